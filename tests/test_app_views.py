"""Views, charts and the result cache of the app, on small synthetic arrays (no server)."""

from __future__ import annotations

import math
import numpy as np
import pytest

from ui import charts, panel, views
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


def test_saved_frames_are_the_pictures_the_app_shows(tmp_path):
    """One conversion to 8 bits: a PNG frame written by qsci.io holds the app's picture of it."""
    from PIL import Image

    from qsci.io import save_frames

    frames = np.array([[[-0.5, 0.5], [1.7, np.nan]], [[0.25, 0.999], [1 / 255, 0.0]]], np.float32)  # (T, H, W)
    folder = save_frames(tmp_path / "x.png", frames)
    for k in range(2):
        saved = np.asarray(Image.open(folder / f"frame_{k:04d}.png"))
        np.testing.assert_array_equal(saved, views.frame_image(frames, k))
    assert views.frame_image(frames, 1).tolist() == [[64, 255], [1, 0]]


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


def test_charts_name_every_point_in_the_legend_and_use_one_tick_style():
    fig = charts.psnr_vs_ops([("ours-4bit", 7.2e11, 30.0), ("ours-2bit", 3.6e11, 25.0), ("gap-tv", None, 25.0)],
                             [("Q-SCI 4-bit", 9.6e12, 34.69), ("EfficientSCI-S", 5.8e14, 35.51)])
    names = [t.name for t in fig.data]
    assert names[:2] == ["ours-4bit", "ours-2bit"] and charts.PUBLISHED_NAME in names  # gap-tv: no x, dropped
    assert all(t.mode in ("markers", "lines+markers", "lines") for t in fig.data)  # no text drawn at points
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.dtick == 1
    assert fig.layout.xaxis.exponentformat == "power"
    caption = " ".join(a.text for a in fig.layout.annotations)
    assert "six scenes" in caption and "S-preset" in caption and "measured here" in caption
    paper = next(t for t in fig.data if t.name == charts.PUBLISHED_NAME)
    assert list(paper.text) == ["Q-SCI 4-bit", "EfficientSCI-S"]  # hover names the published points
    empty = charts.psnr_vs_latency([])
    assert len(empty.data) == 0 and "No points" in empty.layout.annotations[0].text


def test_latency_is_plotted_without_ground_truth():
    fig = charts.psnr_vs_latency([("gap-tv", 0.2, None), ("net", 1.5, None)])
    assert [t.type for t in fig.data] == ["bar", "bar"] and [list(t.x) for t in fig.data] == [[0.2], [1.5]]
    assert charts.NO_GT_NOTE in fig.layout.annotations[0].text
    scored = charts.psnr_vs_latency([("gap-tv", 0.2, 30.0), ("net", 1.5, 25.0)], {"net": "#123456"})
    assert [t.type for t in scored.data] == ["scatter", "scatter"] and scored.data[1].marker.color == "#123456"


def test_methods_not_run_here_are_hollow_markers_at_their_bench_seconds():
    fig = charts.psnr_vs_latency([("net", 1.5, 25.0)], benched=[("qsci-t-gap-4bit", 0.35, 30.98), ("gap-tv", 0.04, 30.13)])
    ref = fig.data[-1]
    assert ref.name == charts.BENCHED_NAME and ref.marker.symbol == "circle-open"
    assert list(ref.text) == ["qsci-t-gap-4bit", "gap-tv"] and list(ref.x) == [0.35, 0.04]
    assert "not run here" in fig.layout.annotations[0].text
    lo, hi = fig.layout.xaxis.range  # log axis: every point, measured or benched, is inside
    assert lo < math.log10(0.04) and hi > math.log10(1.5)
    blind = charts.psnr_vs_latency([("net", 1.5, None)], benched=[("gap-tv", 0.04, 30.13)])
    assert [t.type for t in blind.data] == ["bar"]  # no PSNR axis without ground truth: bars of this input only


def test_results_panel_has_full_captions_crops_for_every_method_and_a_colour_bar():
    gt = _frames(n=1, t=4, h=64, w=64, seed=5)
    recons = {"a": _frames(n=1, t=4, h=64, w=64, seed=6), "b-long-method-name": gt.copy()}
    scores = {"a": ([10.0] * 4, [0.5] * 4), "b-long-method-name": ([99.0] * 4, [1.0] * 4)}
    html = panel.results_html(gt, recons, 2, scores, {"a": "4-bit, ours"})
    assert html.count('class="qsci-tile qsci-tile"') == 3 and html.count('class="qsci-tile qsci-crop"') == 3
    assert html.count('class="qsci-tile qsci-error"') == 2 and "qsci-cbar" in html
    assert "a · 4-bit, ours" in html and "99.00 dB · SSIM 1.000" in html and "Frame 2 of 4" in html
    assert "0.20" in html  # the colour bar's top tick is the maps' scale
    assert "text-overflow" not in panel.CSS and "nowrap" not in panel.CSS
    blind = panel.results_html(None, recons, 0)
    assert panel.NO_GT_REASON.split(":")[0] in blind and "qsci-tile qsci-error" not in blind
    assert blind.count('class="qsci-tile qsci-crop"') == 2


def test_crop_box_finds_the_detail_and_outline_marks_it():
    img = np.zeros((64, 64), np.float32)
    img[40:56, 8:24] = np.random.default_rng(0).random((16, 16))  # the only texture
    top, left, side = panel.crop_box(img)
    assert side == 16 and top <= 40 and top + side >= 56 - 4 and left <= 8 + 4 and left + side >= 24 - 4
    boxed = panel.outline(views.to_uint8(img), (top, left, side))
    assert boxed.shape == (64, 64, 3) and tuple(boxed[top, left]) == panel.BOX_RGB


def test_method_cards_read_scores_and_baseline_from_the_manifest(tmp_path, monkeypatch):
    import json

    from ui import catalog

    manifest = {"models": [{"name": "net-fp32", "file": "a.pt", "bits": 32, "preset": "t", "bops": 8.0e13,
                            "metrics": {"quantized_sci": {"scenes": {"x": {}, "y": {}}, "mean": {"psnr": 31.5}}}},
                           {"name": "net-2bit", "file": "b.pt", "bits": 2, "preset": "t", "bops": 4.0e11,
                            "metrics": {"quantized_sci": {"scenes": {"x": {}, "y": {}}, "mean": {"psnr": 12.25}}}}],
                "gap_tv": {"quantized_sci": {"scenes": {"x": {}, "y": {}}, "mean": {"psnr": 27.75}}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "a.pt").write_bytes(b"x")
    (tmp_path / "b.pt").write_bytes(b"x")
    monkeypatch.setenv("QSCI_CHECKPOINTS", str(tmp_path))
    cards = {c.name: c for c in catalog.method_cards(count_official_bops=False)}
    assert cards["gap-tv"].psnr == 27.75 and "27.75 dB" in cards["gap-tv"].label()
    assert cards["net-fp32"].psnr == 31.5 and not cards["net-fp32"].below_baseline
    assert cards["net-2bit"].below_baseline and "⚠ below GAP-TV" in cards["net-2bit"].label()
    assert "12.25 dB" in cards["net-2bit"].label() and "2-bit" in cards["net-2bit"].label()
    table = catalog.cards_table(list(cards.values()))
    assert "⚠ below GAP-TV (27.75 dB)" in table and "4.00×10¹¹" in table and "mean over x, y" in table
    official = [c for c in cards.values() if c.source == "official"]
    assert official and all(c.score_kind in ("published", "") for c in official)


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
    line = next(t for t in fig.data if t.name.startswith("gap-tv"))
    assert line.mode == "lines" and list(line.y) == [26.9, 26.9] and "26.90 dB" in line.name
