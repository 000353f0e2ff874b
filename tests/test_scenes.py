import numpy as np
import pytest

from qsci.errors import QSCIError
from qsci.physics import SCIOperator
from qsci.scenes import list_scenes, load_scene, scene_from_files, simulate_scene, split_groups


def test_list_scenes_covers_all_kinds():
    scenes = {s.name: s for s in list_scenes()}
    kinds = {s.kind for s in scenes.values()}
    assert kinds == {"benchmark", "real", "embedded"}
    assert scenes["drop8"].available and scenes["traffic"].available
    assert not scenes["kobe"].available  # not in the shared data folder
    assert sum(s.kind == "real" for s in scenes.values()) == 20
    assert all(s.available for s in scenes.values() if s.kind == "embedded")


def test_benchmark_scene_is_resimulated_with_eval_mask():
    sc = load_scene("traffic")
    assert sc.meas.shape == (6, 256, 256) and sc.mask.shape == (8, 256, 256) and sc.gt.shape == (6, 8, 256, 256)
    np.testing.assert_allclose(sc.meas[2], SCIOperator(sc.mask).A(sc.gt[2]), rtol=1e-5, atol=1e-4)
    assert abs(sc.mask.mean() - 0.501) < 0.01  # the Q-SCI evaluation mask


def test_embedded_scene_is_deterministic():
    name = next(s.name for s in list_scenes() if s.kind == "embedded")
    a, b = load_scene(name), load_scene(name)
    assert a.meas.shape[1:] == (256, 256) and a.gt.shape[1] == 8
    np.testing.assert_array_equal(a.meas, b.meas)


def test_simulate_scene_noise_and_errors():
    frames = np.random.default_rng(0).random((17, 32, 32)).astype(np.float32)
    clean = simulate_scene(frames, cr=8, mask="random:3")
    noisy = simulate_scene(frames, cr=8, mask="random:3", read_noise_std=0.05)
    assert clean.meas.shape == (2, 32, 32) and clean.gt.shape == (2, 8, 32, 32)
    assert 0.02 < np.std(noisy.meas - clean.meas) < 0.08
    with pytest.raises(QSCIError, match="need at least 8 frames"):
        split_groups(frames[:5], 8)
    with pytest.raises(QSCIError, match="does not match the scene size"):
        simulate_scene(frames, cr=8, mask="quantized_sci")


def test_scene_from_npy_files(tmp_path):
    rng = np.random.default_rng(1)
    mask = (rng.random((8, 32, 32)) > 0.5).astype(np.float32)
    x = rng.random((8, 32, 32)).astype(np.float32)
    np.save(tmp_path / "mask.npy", mask)
    np.save(tmp_path / "meas.npy", SCIOperator(mask).A(x)[None])
    np.save(tmp_path / "gt.npy", x)
    sc = scene_from_files(tmp_path / "meas.npy", tmp_path / "mask.npy", tmp_path / "gt.npy")
    assert sc.cr == 8 and sc.meas.shape == (1, 32, 32) and sc.gt.shape == (1, 8, 32, 32)
    np.save(tmp_path / "mask16.npy", mask[:, :16])
    with pytest.raises(QSCIError, match="meas.npy|mask16.npy"):
        scene_from_files(tmp_path / "meas.npy", tmp_path / "mask16.npy")
