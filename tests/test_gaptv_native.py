"""Compiled GAP-TV: the numpy loop's values bit for bit, with measurements run in parallel or not."""

from __future__ import annotations

import numpy as np
import pytest

from qsci.physics import random_binary_mask
from qsci.runners import GapTVRunner
from qsci.solvers import gaptv_native
from qsci.solvers.gaptv import gap_tv


def _problem(t: int, h: int, w: int, n: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    x = np.stack([[np.sin((xx + 3 * k + i) / 5.0) * 0.3 + 0.5 + 0.2 * (yy > h // 3) for k in range(t)]
                  for i in range(n)]).astype(np.float32)
    x += 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    mask = random_binary_mask(t, h, w, seed=seed)
    return (x * mask).sum(1), mask


def _numpy(monkeypatch, *args, **kw) -> np.ndarray:
    with monkeypatch.context() as m:
        m.setattr(gaptv_native, "library", lambda: None)
        return gap_tv(*args, **kw)


def test_library_builds():
    assert gaptv_native.library() is not None, f"compiled GAP-TV did not build: {gaptv_native.status()}"


@pytest.mark.parametrize("shape", [(8, 64, 48), (1, 20, 18), (4, 33, 21), (2, 70, 64)])
def test_same_values_as_numpy(monkeypatch, shape):
    y, mask = _problem(*shape, n=2, seed=sum(shape))
    ref = _numpy(monkeypatch, y, mask, iters=12, tv_weight_end=0.05)
    assert np.isfinite(ref).all() and ref.std() > 0.01
    for threads in (1, 2, 3):  # measurements in parallel (more threads than measurements: capped)
        out = gap_tv(y, mask, iters=12, tv_weight_end=0.05, threads=threads)
        np.testing.assert_array_equal(out, ref, err_msg=f"shape {shape}, {threads} threads")


def test_single_tv_iteration_and_no_temporal_term(monkeypatch):
    y, mask = _problem(6, 40, 32, seed=5)
    for kw in (dict(tv_iters=1), dict(temporal=0.0), dict(tv_iters=5, temporal=1.3)):
        ref = _numpy(monkeypatch, y, mask, iters=6, **kw)
        np.testing.assert_array_equal(gap_tv(y, mask, iters=6, threads=2, **kw), ref, err_msg=str(kw))


@pytest.mark.parametrize("shape,iters,tv_iters", [((8, 40, 256), 12, 3), ((3, 17, 203), 7, 2), ((1, 9, 160), 11, 3),
                                                   ((8, 24, 100), 5, 3)])
def test_column_windows_give_the_same_values(monkeypatch, shape, iters, tv_iters):
    """One measurement on 2-3 threads runs as column windows that swap margins every
    `ROUNDS` iterations: the numpy values bit for bit (100 columns: too narrow, one window)."""
    y, mask = _problem(*shape, seed=shape[2])
    ref = _numpy(monkeypatch, y[0], mask, iters=iters, tv_iters=tv_iters, tv_weight_end=0.05)
    for threads in (2, 3):
        out = gap_tv(y[0], mask, iters=iters, tv_iters=tv_iters, tv_weight_end=0.05, threads=threads)
        np.testing.assert_array_equal(out, ref, err_msg=f"shape {shape}, {threads} threads")
    assert gaptv_native._windows(256, 2, 16) == [(0, 144, 0, 128), (112, 256, 128, 256)]


def test_column_windows_are_used_and_report_progress(monkeypatch):
    calls = []
    real = gaptv_native.library()

    class Spy:  # counts the widths the compiled iteration is called with
        def qsci_gap_iteration(self, *args):
            calls.append(args[13])
            return real.qsci_gap_iteration(*args)

    monkeypatch.setattr(gaptv_native, "library", lambda: Spy())
    y, mask = _problem(4, 16, 200, seed=3)
    seen = []
    gap_tv(y[0], mask, iters=8, threads=2, progress=lambda f, m: seen.append(f))
    assert sorted(set(calls)) == [116] and len(calls) == 16  # two windows of 100 + 16 columns, 8 iterations each
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_disabled_falls_back_to_numpy(monkeypatch):
    monkeypatch.setenv("QSCI_NATIVE", "0")
    gaptv_native.library.cache_clear()
    try:
        assert gaptv_native.library() is None and "QSCI_NATIVE=0" in gaptv_native.status()
        assert GapTVRunner().backend == "numpy-fp32"
        y, mask = _problem(4, 16, 16)
        assert gap_tv(y[0], mask, iters=3).shape == (4, 16, 16)
    finally:
        monkeypatch.delenv("QSCI_NATIVE")
        gaptv_native.library.cache_clear()
    assert gaptv_native.library() is not None
    assert GapTVRunner().backend == "c-fp32"


def test_parallel_measurements_report_progress_in_order():
    y, mask = _problem(4, 24, 24, n=3, seed=2)
    seen = []
    gap_tv(y, mask, iters=10, threads=2, progress=lambda f, msg: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 3
