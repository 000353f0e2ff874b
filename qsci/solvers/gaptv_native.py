"""GAP-TV's outer loop on compiled passes (`gaptv_kernels.c`): one call per GAP iteration.

Why: GAP-TV is the first step of the warm-start models and the classical baseline; in numpy it
took 0.39 s of the 0.71 s an int8 warm-start reconstruction needed (256x256x8). The C version
computes the numpy loop's values (the same operations in the same order, no FMA contraction;
tested bit for bit) in one row wavefront per GAP iteration: 0.054 s.

With `workers` > 1 one measurement is split into column windows, one per thread. A GAP
iteration moves information `tv_iters` columns sideways (each TV iteration reads one column
either side), so a window that reaches `rounds * tv_iters` columns into its neighbours computes
its own columns exactly for `rounds` iterations; then the windows swap those margins and go on.
Same values bit for bit as one window.
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
SIGNATURES = {"qsci_gap_iteration": ([native.PTR] * 11 + [native.I64] * 3 + [native.F32] * 4 + [native.I64], None)}


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The compiled GAP-TV iteration, or None (reason in `status()`)."""
    dll, _STATUS["reason"] = native.load(SOURCE, FLAGS, SIGNATURES)
    return dll


def status() -> str:
    library()
    return _STATUS.get("reason", "")


ROUNDS = 5  # GAP iterations between two margin swaps of the column windows
MIN_COLUMNS = 48  # narrowest own part of a window worth a thread


class _Window:
    """Columns [lo, hi) of one measurement (own part [own_lo, own_hi)) with private state."""

    def __init__(self, lo: int, hi: int, own_lo: int, own_hi: int, y, phi, phi_s, u, av, y_acc, temporal: bool):
        self.lo, self.hi, self.own = lo, hi, slice(own_lo - lo, own_hi - lo)
        self.own_global = slice(own_lo, own_hi)
        cols = slice(lo, hi)
        self.y, self.phi_s = (np.ascontiguousarray(a[:, cols]) for a in (y, phi_s))
        self.phi, self.u = (np.ascontiguousarray(a[:, :, cols]) for a in (phi, u))
        self.av, self.y_acc = (np.ascontiguousarray(a[:, cols]) for a in (av, y_acc))
        self.f, self.qx, self.qy = (np.empty_like(self.u) for _ in range(3))
        self.qt = np.empty_like(self.u) if temporal else None
        self.r = np.empty_like(self.av)

    def pointers(self) -> list:
        return [a.ctypes.data if a is not None else None for a in
                (self.y, self.y_acc, self.av, self.phi_s, self.phi, self.u, self.f, self.qx, self.qy, self.qt, self.r)]

    def load(self, u: np.ndarray, av: np.ndarray, y_acc: np.ndarray) -> None:
        """Take the neighbours' columns (outside the own part) from the shared state."""
        for a, b in ((self.u, u), (self.av, av), (self.y_acc, y_acc)):
            a[..., :self.own.start] = b[..., self.lo:self.own_global.start]
            a[..., self.own.stop:] = b[..., self.own_global.stop:self.hi]

    def store(self, u: np.ndarray, av: np.ndarray, y_acc: np.ndarray, edge: int | None = None) -> None:
        """Put the own columns into the shared state (only `edge` columns at each end: what the
        neighbours load between rounds)."""
        lo, hi, glo = self.own.start, self.own.stop, self.own_global.start
        parts = [(lo, hi)] if edge is None or 2 * edge >= hi - lo else [(lo, lo + edge), (hi - edge, hi)]
        for a, b in ((self.u, u), (self.av, av), (self.y_acc, y_acc)):
            for c0, c1 in parts:
                b[..., glo + c0 - lo:glo + c1 - lo] = a[..., c0:c1]


def _windows(w: int, parts: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(lo, hi, own_lo, own_hi) for `parts` column windows of a width-w frame."""
    edges = [round(i * w / parts) for i in range(parts + 1)]
    return [(max(0, a - margin), min(w, b + margin), a, b) for a, b in zip(edges, edges[1:])]


def gap_one(y: np.ndarray, phi: np.ndarray, phi_s: np.ndarray, count: np.ndarray, lams: list[float],
            tv_iters: int, temporal: float, tick, workers: int = 1) -> np.ndarray:
    """`qsci.solvers.gaptv._gap_one` on the compiled iteration; float32 arrays. `workers` > 1
    splits the frame into that many column windows run at once (where each is wide enough)."""
    dll = library()
    if dll is None:
        raise RuntimeError(status())
    t, h, w = phi.shape
    wt = float(temporal) if t > 1 else 0.0
    phi, y, phi_s = (np.ascontiguousarray(a, np.float32) for a in (phi, y, phi_s))
    u = np.broadcast_to(y / count, phi.shape).copy()  # per-pixel mean start: a writable C-order copy
    av = (u * phi).sum(0)
    y_acc = av.copy()  # makes the first accelerated step the plain projection
    bounds = [(float(np.float32(lam / TV_STEP)),  # rounded to float32 as numpy's clip does
               float(np.float32(lam / TV_STEP / wt)) if wt > 0 else 0.0) for lam in lams]
    margin = -(-ROUNDS * tv_iters // 16) * 16  # whole 16-float vectors: no short loop ends per row
    parts = max(1, min(int(workers), w // max(MIN_COLUMNS, margin)))
    windows = [_Window(*cols, y, phi, phi_s, u, av, y_acc, wt > 0) for cols in _windows(w, parts, margin)]

    def run(i: int, first: int, last: int) -> None:
        win = windows[i]
        ptrs, width = win.pointers(), win.hi - win.lo
        for k in range(first, last):
            dll.qsci_gap_iteration(*ptrs, t, h, width, *bounds[k], wt * wt, TV_STEP, tv_iters)
            if i == 0:
                tick(k)
        if parts > 1:
            win.store(u, av, y_acc, edge=None if last == len(lams) else margin)

    step = ROUNDS if parts > 1 else len(lams)
    for first in range(0, len(lams), step):  # each round: the windows at once, then a margin swap
        if first > 0:  # after every window has stored its round (a window loading early would race)
            for win in windows:
                win.load(u, av, y_acc)
        last = min(len(lams), first + step)
        native.parallel_map(lambda i: run(i, first, last), list(range(parts)), parts)
    return u
