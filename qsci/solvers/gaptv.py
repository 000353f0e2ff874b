"""GAP-TV: generalized alternating projection with a total-variation prior (Yuan, ICIP 2016).

Why: a classical, training-free baseline that reconstructs any mask and compression ratio and
that the networks are compared against. Each outer iteration does

1. the accelerated Euclidean projection onto {x : sum_t Phi_t x_t = y}:
   `y_acc += y - A(v)`;  `x = v + A^T((y_acc - A(v)) / Phi_s)` with `Phi_s = sum_t Phi_t^2`;
2. a TV denoising step `v ~ argmin_u ||u - x||^2 / 2 + lam * TV(u)`: a few dual projected-
   gradient (Chambolle) iterations started from zero each time. The early stop is deliberate:
   it is a milder denoiser than the exact proximal map, and GAP converges to sharper frames
   with it (warm-starting the duals measured ~2 dB worse).

TV is anisotropic: |d/dx| + |d/dy| + `temporal` * |d/dt|. The temporal term matters: it gives
~2-3 dB over per-frame TV on the benchmark scenes. Computation is numpy float32 with
preallocated buffers and in-place updates, one measurement at a time (the working set then stays
in cache). It is deliberately single-threaded: the arrays are small (8 x 256 x 256), and torch's
intra-op threads measured 10-30x slower on a shared, oversubscribed 2-core machine. Results are
deterministic. Where a C compiler is present the same loop runs compiled (`gaptv_native`, one
row wavefront per GAP iteration, the same values); `threads` > 1 then reconstructs several
measurements at once, or splits a single one into column windows.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np

from qsci import native
from qsci.errors import QSCIError
from qsci.solvers import gaptv_native

Progress = Callable[[float, str], None] | None

DEFAULTS = dict(iters=40, tv_weight=0.2, tv_iters=3, temporal=0.7)


class _TVDenoiser:
    """Anisotropic space-time TV denoising by dual projected gradient, allocation-free.

    The duals are kept pre-scaled, `q = lam * p / step` (p on the forward differences along W,
    H, T; far-edge entries stay zero, so `div` needs no boundary cases). Then each iteration is
    `q <- clip(q + grad(u), +-lam / step)` and `u = f + step * div(q)`, i.e. Chambolle's
    `p <- clip(p + step / lam * grad(u), -1, 1)`, `u = f + lam * div(p)` with step 1/8, at a
    handful of numpy passes per iteration (single-threaded: no thread contention).
    """

    step = 0.125

    def __init__(self, shape: tuple[int, ...], temporal: float):
        self.wt = float(temporal) if shape[-3] > 1 else 0.0
        self.qx = np.zeros(shape, np.float32)
        self.qy = np.zeros(shape, np.float32)
        self.qt = np.zeros(shape, np.float32) if self.wt > 0 else None
        self.tmp = np.empty(shape, np.float32)
        self.div = np.empty(shape, np.float32)

    def __call__(self, f: np.ndarray, lam: float, iters: int, out: np.ndarray) -> np.ndarray:
        """Denoise `f` into `out` (which must not alias `f`); duals restart from zero."""
        qx, qy, qt, t, d, wt = self.qx, self.qy, self.qt, self.tmp, self.div, self.wt
        bound = lam / self.step
        for q in (qx, qy, qt):
            if q is not None:
                q.fill(0.0)
        np.copyto(out, f)
        for _ in range(iters):
            np.subtract(out[..., :, 1:], out[..., :, :-1], out=t[..., :, :-1])
            qx[..., :, :-1] += t[..., :, :-1]
            np.subtract(out[..., 1:, :], out[..., :-1, :], out=t[..., :-1, :])
            qy[..., :-1, :] += t[..., :-1, :]
            np.clip(qx, -bound, bound, out=qx)
            np.clip(qy, -bound, bound, out=qy)
            np.add(qx, qy, out=d)
            d[..., :, 1:] -= qx[..., :, :-1]
            d[..., 1:, :] -= qy[..., :-1, :]
            if qt is not None:
                # p_t update uses wt * dt(u); with r = q_t / wt the clip bound becomes bound / wt
                # and its divergence enters with wt^2.
                np.subtract(out[..., 1:, :, :], out[..., :-1, :, :], out=t[..., :-1, :, :])
                qt[..., :-1, :, :] += t[..., :-1, :, :]
                np.clip(qt, -bound / wt, bound / wt, out=qt)
                np.multiply(qt, wt * wt, out=t)
                d += t
                d[..., 1:, :, :] -= t[..., :-1, :, :]
            np.multiply(d, self.step, out=out)
            out += f
        return out


def tv_denoise(f, lam: float, iters: int = 50, temporal: float = 0.0) -> np.ndarray:
    """Space-time TV denoising of a (..., T, H, W) stack (the inner step of GAP-TV), float32."""
    ft = _as_array(f, "input")
    if ft.ndim < 3:
        ft = ft.reshape(1, *ft.shape)
    if lam <= 0:
        return ft.reshape(np.shape(f))
    out = _TVDenoiser(ft.shape, temporal)(ft, float(lam), int(iters), np.empty_like(ft))
    return out.reshape(np.shape(f))


def _as_array(a, name: str) -> np.ndarray:
    """numpy or torch input -> a private float32 numpy copy, finite."""
    if hasattr(a, "detach"):  # a torch tensor; torch itself is not needed here
        a = a.detach().cpu().numpy()
    arr = np.array(a, dtype=np.float32, copy=True)
    if not np.isfinite(arr).all():
        raise QSCIError(f"{name} contains NaN or Inf values")
    return arr


def _gap_one(y: np.ndarray, phi: np.ndarray, phi_s: np.ndarray, count: np.ndarray,
             lams: list[float], tv_iters: int, temporal: float,
             tick: Callable[[int], None]) -> np.ndarray:
    """Accelerated GAP-TV for one measurement y (H, W); returns (T, H, W)."""
    tv = _TVDenoiser(phi.shape, temporal)
    v = np.broadcast_to(y / count, phi.shape).copy()  # per-pixel mean start (a writable copy, also for T = 1)
    x = np.empty_like(v)
    av = (v * phi).sum(0)
    y_acc = av.copy()  # makes the first accelerated step the plain projection
    r = np.empty_like(y)
    for k, lam in enumerate(lams):
        y_acc += y
        y_acc -= av
        np.subtract(y_acc, av, out=r)
        r /= phi_s
        np.multiply(phi, r, out=x)
        x += v  # x = v + Phi^T((y_acc - A v) / Phi_s)
        tv(x, lam, tv_iters, out=v)
        np.multiply(v, phi, out=x)
        np.sum(x, axis=0, out=av)
        tick(k)
    return v


def gap_tv(
    y,
    mask,
    iters: int = DEFAULTS["iters"],
    tv_weight: float = DEFAULTS["tv_weight"],
    tv_iters: int = DEFAULTS["tv_iters"],
    temporal: float = DEFAULTS["temporal"],
    tv_weight_end: float | None = None,
    progress: Progress = None,
    threads: int = 1,
) -> np.ndarray:
    """Reconstruct video frames from coded snapshot(s) with accelerated GAP-TV.

    y: (H, W) or (N, H, W) measurement(s) (`y = sum_t mask_t * x_t`); mask: (T, H, W).
    Returns float32 frames, (N, T, H, W) for 3-D `y` and (T, H, W) for 2-D `y`, not clipped.
    `tv_weight` may decay geometrically to `tv_weight_end` (default: constant).
    `progress(fraction, message)` is called with increasing fractions, the last one 1.0.
    `threads`: measurements reconstructed at once by the compiled loop, or for a single one, column
    windows of it (numpy: one at a time, one thread).
    Defaults measured on Drop/Runner/Traffic (see scripts/check_gaptv.py).
    """
    yt = _as_array(y, "measurement")
    mt = _as_array(mask, "mask")
    if mt.ndim != 3:
        raise QSCIError(f"mask must have 3 axes (T, H, W), got shape {tuple(mt.shape)}")
    single = yt.ndim == 2
    if single:
        yt = yt[None]
    if yt.ndim != 3 or tuple(yt.shape[-2:]) != tuple(mt.shape[-2:]):
        raise QSCIError(
            f"measurement shape {tuple(np.shape(y))} does not match the mask size {tuple(mt.shape[-2:])}"
        )
    if not np.any(mt):
        raise QSCIError("mask is all zeros: nothing was measured")
    if iters < 1 or tv_iters < 1 or tv_weight <= 0 or temporal < 0:
        raise QSCIError("gap_tv needs iters >= 1, tv_iters >= 1, tv_weight > 0 and temporal >= 0")
    end = tv_weight if tv_weight_end is None else float(tv_weight_end)
    if end <= 0:
        raise QSCIError("gap_tv needs tv_weight_end > 0")
    ratio = (end / tv_weight) ** (1.0 / max(iters - 1, 1))
    lams = [tv_weight * ratio**k for k in range(iters)]

    n = yt.shape[0]
    total = n * iters
    start = time.perf_counter()
    every = max(1, iters // 20)

    out = np.empty((n, *mt.shape), np.float32)
    phi_s = (mt * mt).sum(0)
    phi_s[phi_s == 0] = 1.0
    count = mt.sum(0)
    count[count == 0] = 1.0
    compiled = gaptv_native.library() is not None

    def one(i: int) -> None:
        def tick(k: int) -> None:
            if progress is not None and (k % every == every - 1 or k == iters - 1):
                with lock:  # iterations done over all measurements: increasing, 1.0 at the end
                    done[i] = k + 1
                    progress(sum(done) / total, f"gap-tv: measurement {i + 1}/{n}, iteration "
                             f"{k + 1}/{iters} ({time.perf_counter() - start:.1f} s)")
        if compiled:  # one measurement: its column windows in parallel (never both: one thread pool)
            out[i] = gaptv_native.gap_one(yt[i], mt, phi_s, count, lams, tv_iters, temporal, tick,
                                          workers=int(threads) if n == 1 else 1)
        else:
            out[i] = _gap_one(yt[i], mt, phi_s, count, lams, tv_iters, temporal, tick)

    lock, done = threading.Lock(), [0] * n
    # ctypes releases the GIL during each compiled iteration, so measurements run in parallel
    native.parallel_map(one, list(range(n)), max(1, min(int(threads), n)) if compiled else 1)
    return out[0] if single else out
