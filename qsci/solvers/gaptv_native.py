"""GAP-TV's outer loop on compiled passes (`gaptv_kernels.c`): one call per GAP iteration.

Why: GAP-TV is the first step of the warm-start models and the classical baseline; in numpy it
took 0.39 s of the 0.71 s an int8 warm-start reconstruction needed (256x256x8). The C version
computes the numpy loop's values (the same operations in the same order, no FMA contraction;
tested bit for bit) in one row wavefront per GAP iteration: 0.054 s.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np

from qsci import native

SOURCE = Path(__file__).with_name("gaptv_kernels.c")
FLAGS = [*native.BASE_FLAGS, "-fno-math-errno", "-ffp-contract=off"]  # no fused multiply-add
TV_STEP = 0.125  # the dual step of `gaptv._TVDenoiser`
_STATUS: dict[str, str] = {}


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The compiled GAP-TV iteration, or None (reason in `status()`)."""
    dll, _STATUS["reason"] = native.load(SOURCE, FLAGS)
    if dll is None:
        return None
    fp, i64, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    dll.qsci_gap_iteration.argtypes = [fp] * 11 + [i64] * 3 + [f32] * 4 + [i64]
    dll.qsci_gap_iteration.restype = None
    return dll


def status() -> str:
    library()
    return _STATUS.get("reason", "")


def gap_one(y: np.ndarray, phi: np.ndarray, phi_s: np.ndarray, count: np.ndarray, lams: list[float],
            tv_iters: int, temporal: float, tick) -> np.ndarray:
    """`qsci.solvers.gaptv._gap_one` on the compiled iteration; float32 arrays."""
    dll = library()
    if dll is None:
        raise RuntimeError(status())
    t, h, w = phi.shape
    wt = float(temporal) if t > 1 else 0.0
    phi, y, phi_s = (np.ascontiguousarray(a, np.float32) for a in (phi, y, phi_s))
    u = np.broadcast_to(y / count, phi.shape).copy()  # per-pixel mean start: a writable C-order copy
    av = (u * phi).sum(0)
    y_acc = av.copy()  # makes the first accelerated step the plain projection
    f, qx, qy = np.empty_like(u), np.empty_like(u), np.empty_like(u)  # duals: set by each first TV pass
    qt = np.empty_like(u) if wt > 0 else None
    r = np.empty_like(av)
    ptrs = [a.ctypes.data if a is not None else None for a in (y, y_acc, av, phi_s, phi, u, f, qx, qy, qt, r)]
    for k, lam in enumerate(lams):
        bound = float(np.float32(lam / TV_STEP))  # rounded to float32 as numpy's clip does
        bound_t = float(np.float32(lam / TV_STEP / wt)) if wt > 0 else 0.0
        dll.qsci_gap_iteration(*ptrs, t, h, w, bound, bound_t, wt * wt, TV_STEP, tv_iters)
        tick(k)
    return u
