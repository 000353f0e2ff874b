"""Views, charts and the result cache of the app, on small synthetic arrays (no server)."""

from __future__ import annotations

import numpy as np
import pytest

from ui import charts, views
from ui.cache import ResultCache, array_digest


def _frames(n=2, t=4, h=12, w=10, seed=0):
    return np.random.default_rng(seed).random((n, t, h, w), dtype=np.float32)


def test_frame_image_flat_index_and_clamping():
    f = _frames()
    assert views.frame_count(f) == 8
    np.testing.assert_array_equal(views.frame_image(f, 5), views.to_uint8(f[1, 1]))
    np.testing.assert_array_equal(views.frame_image(f, 99), views.to_uint8(f[1, 3]))  # stale slider value
    np.testing.assert_array_equal(views.frame_image(f, -3.4), views.to_uint8(f[0, 0]))
    assert views.frame_image(f, 2.0).dtype == np.uint8


def test_to_uint8_clips_overshoot_and_nan():
    out = views.to_uint8(np.array([[-0.5, 0.5, 1.7, np.nan]]))
    assert out.tolist() == [[0, 128, 255, 0]]


def test_error_map_is_rgb_and_zero_error_is_coldest():
    ref = _frames()[0, 0]
    same = views.error_map(ref, ref)
    worse = views.error_map(ref, np.clip(ref + 0.3, 0, 1))
    assert same.shape == ref.shape + (3,) and same.dtype == np.uint8
    assert same.reshape(-1, 3).std(axis=0).max() == 0  # one colour everywhere
    assert worse.astype(int).sum() > same.astype(int).sum()
    with pytest.raises(ValueError):
        views.error_map(ref, ref[:-1])


def test_measurement_and_mask_images():
    meas = np.random.default_rng(1).random((3, 16, 20), dtype=np.float32) * 4
    img = views.measurement_image(meas, 2)
    assert img.shape == (16, 20) and img.max() == 255
    mask = (np.random.default_rng(2).random((10, 16, 20)) > 0.5).astype(np.float32)
    mosaic = views.mask_mosaic(mask, max_planes=8, cols=4, gap=2)
    assert mosaic.shape == (2 * 16 + 2, 4 * 20 + 3 * 2)
    assert set(np.unique(mosaic)) <= {0, 255}


def test_side_by_side_with_and_without_ground_truth():
    gt = _frames(seed=3)
    recons = {"a": _frames(seed=4), "b": gt.copy()}
    scores = {"a": ([10.0] * 8, [0.5] * 8), "b": ([99.0] * 8, [1.0] * 8)}
    images, errors = views.side_by_side(gt, recons, 3, scores)
    assert [c for _, c in images][0].startswith("ground truth")
    assert "99.00 dB" in images[2][1] and len(errors) == 2
    assert errors[1][0].reshape(-1, 3).std(axis=0).max() == 0  # b is exact
    images, errors = views.side_by_side(None, recons, 0)
    assert len(images) == 2 and errors == []


def test_charts_label_published_points_and_use_log_x():
    fig = charts.psnr_vs_ops([("ours-4bit", 72.0, 30.0), ("gap-tv", None, 25.0)],
                             [("Q-SCI 4-bit", 72.69, 34.69), ("EfficientSCI-S", 563.87, 35.51)])
    names = [t.name for t in fig.data]
    assert charts.PUBLISHED_NAME in names and charts.MEASURED_NAME in names
    assert fig.layout.xaxis.type == "log"
    ours = next(t for t in fig.data if t.name == charts.MEASURED_NAME)
    assert list(ours.text) == ["ours-4bit"]  # the point without a compute figure is dropped
    empty = charts.psnr_vs_latency([])
    assert len(empty.data) == 0 and empty.layout.annotations


def test_cache_is_bounded_lru():
    cache = ResultCache(max_items=2, max_bytes=10_000)
    a, b, c = (np.zeros(100, np.float32) for _ in range(3))
    cache.put(("x", "a"), a)
    cache.put(("x", "b"), b)
    assert cache.get(("x", "a")) is a  # now most recent
    cache.put(("x", "c"), c)
    assert cache.get(("x", "b")) is None and len(cache) == 2
    cache.put(("x", "big"), np.zeros(20_000, np.uint8))  # over the whole budget: not stored
    assert cache.get(("x", "big")) is None and cache.nbytes == 800


def test_array_digest_depends_on_content_and_shape():
    x = np.arange(6, dtype=np.float32)
    assert array_digest(x, None) == array_digest(x.copy(), None)
    assert array_digest(x) != array_digest(x.reshape(2, 3))
    assert array_digest(x, None) != array_digest(x, x)


def test_methods_without_compute_become_reference_lines():
    fig = charts.psnr_vs_ops([], [("Q-SCI 4-bit", 7e10, 34.69)], lines=[("gap-tv", 26.9)])
    assert any("gap-tv" in (a.text or "") for a in fig.layout.annotations)
