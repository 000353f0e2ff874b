"""GAP-TV's outer loop on the compiled passes of `gaptv_kernels.c` (one sweep per TV iteration).

Why: GAP-TV is the first step of the warm-start models and the classical baseline; in numpy it
took 0.39 s of the 0.71 s an int8 warm-start reconstruction needs (256x256x8). The compiled
sweeps give the numpy version's values (no FMA contraction, same order of operations; tested)
on `threads` row slices, and the result does not depend on the thread count.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np

from qsci import native

SOURCE = Path(__file__).with_name("gaptv_kernels.c")
FLAGS = [*native.BASE_FLAGS, "-fno-math-errno", "-ffp-contract=off"]  # no fused multiply-add
TV_STEP = 0.125
MIN_ROWS = 16  # rows per thread slice below which a second thread costs more than it saves
_STATUS: dict[str, str] = {}


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The compiled GAP-TV passes, or None (reason in `status()`)."""
    dll, _STATUS["reason"] = native.load(SOURCE, FLAGS)
    if dll is None:
        return None
    fp, i64, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    dll.qsci_gap_project.argtypes = [fp] * 8 + [i64] * 5
    dll.qsci_tv_halo.argtypes = [fp] * 5 + [i64] * 3 + [f32, i64, ctypes.c_int]
    dll.qsci_tv_sweep.argtypes = [fp] * 5 + [i64] * 3 + [f32] * 4 + [i64] * 2 + [fp] * 4 + [ctypes.c_int]
    for f in (dll.qsci_gap_project, dll.qsci_tv_halo, dll.qsci_tv_sweep):
        f.restype = None
    return dll


def status() -> str:
    library()
    return _STATUS.get("reason", "")


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


def gap_one(y: np.ndarray, phi: np.ndarray, phi_s: np.ndarray, count: np.ndarray, lams: list[float],
            tv_iters: int, temporal: float, tick, threads: int = 1) -> np.ndarray:
    """`qsci.solvers.gaptv._gap_one` on the compiled passes; all arrays float32, C order."""
    dll = library()
    if dll is None:
        raise RuntimeError(status())
    t, h, w = phi.shape
    wt = float(temporal) if t > 1 else 0.0
    phi = np.ascontiguousarray(phi, np.float32)
    y = np.ascontiguousarray(y, np.float32)
    phi_s = np.ascontiguousarray(phi_s, np.float32)
    u = np.broadcast_to(y / count, phi.shape).copy()  # per-pixel mean start: a writable C-order copy
    av = (u * phi).sum(0)
    y_acc = av.copy()  # makes the first accelerated step the plain projection
    f = np.empty_like(u)
    r = np.empty_like(av)
    qx, qy = np.empty_like(u), np.empty_like(u)  # written by each projection's first sweep
    qt = np.empty_like(u) if wt > 0 else None
    parts = native.slices(h, max(1, min(threads, h // MIN_ROWS)))
    borders = [r0 for r0, _ in parts[1:]]
    halo_u = np.empty((max(len(borders), 1), t, w), np.float32)
    halo_q = np.empty_like(halo_u)
    workers = len(parts)
    n = (t, h, w)

    def project(k: int) -> None:
        r0, r1 = parts[k]
        dll.qsci_gap_project(_ptr(y), _ptr(y_acc), _ptr(av), _ptr(phi_s), _ptr(phi), _ptr(u), _ptr(f),
                             _ptr(r), *n, r0, r1)

    def sweep(k: int, bound: float, bound_t: float, first: bool, last: bool) -> None:
        r0, r1 = parts[k]
        dll.qsci_tv_sweep(_ptr(f), _ptr(u), _ptr(qx), _ptr(qy), _ptr(qt), *n, bound, bound_t, wt * wt,
                          TV_STEP, r0, r1, _ptr(halo_u[k]) if k + 1 < workers else None,
                          _ptr(halo_q[k - 1]) if k > 0 else None,
                          _ptr(phi) if last else None, _ptr(av) if last else None, int(first))

    idx = list(range(workers))
    for k, lam in enumerate(lams):
        native.parallel_map(project, idx, workers)
        bound = float(np.float32(lam / TV_STEP))  # rounded to float32 as numpy's clip does
        bound_t = float(np.float32(lam / TV_STEP / wt)) if wt > 0 else 0.0
        for it in range(tv_iters):
            for b_i, b in enumerate(borders):  # the values a slice reads across its borders, first
                dll.qsci_tv_halo(_ptr(f), _ptr(u), _ptr(qy), _ptr(halo_u[b_i]), _ptr(halo_q[b_i]), *n, bound, b,
                                 int(it == 0))
            first, last = it == 0, it == tv_iters - 1
            native.parallel_map(lambda i: sweep(i, bound, bound_t, first, last), idx, workers)
        tick(k)
    return u
