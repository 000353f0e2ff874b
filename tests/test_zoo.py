"""Every model in checkpoints/manifest.json loads and reconstructs, and the manifest is complete."""

import numpy as np
import pytest

from qsci.engine import reconstruct
from qsci.physics import random_binary_mask, simulate_measurement
from qsci.scenes import load_scene
from qsci.zoo import checkpoints_dir, get_method, read_manifest

MANIFEST = read_manifest()
NAMES = [m["name"] for m in MANIFEST["models"]]
REQUIRED = {"name", "file", "preset", "bits", "params", "bops", "size_bytes", "samples_seen",
            "training_minutes", "hardware", "git_commit", "command", "metrics"}


def test_manifest_lists_the_five_bit_depths_of_each_family():
    from qsci.models import ModelConfig

    families: dict[str, list[int]] = {}
    for m in MANIFEST["models"]:
        parts = ModelConfig.parse_name(m["name"])
        assert parts["bits"] == m["bits"] and parts["preset"] == m["preset"], m["name"]
        families.setdefault(parts["family"], []).append(m["bits"])
    assert {f: sorted(b) for f, b in families.items()} == {"": [2, 3, 4, 8, 32], "gap": [2, 3, 4, 8, 32]}
    assert len({m["preset"] for m in MANIFEST["models"]}) == 1


@pytest.mark.parametrize("name", NAMES)
def test_manifest_entry_is_complete_and_measured(name):
    entry = next(m for m in MANIFEST["models"] if m["name"] == name)
    assert REQUIRED <= set(entry)
    assert (checkpoints_dir() / entry["file"]).stat().st_size == entry["size_bytes"]
    for mask in ("quantized_sci", "random"):
        scores = entry["metrics"][mask]
        assert set(scores["scenes"]) == {"drop8", "runner8", "traffic"}
        mean = np.mean([s["psnr"] for s in scores["scenes"].values()])
        assert abs(mean - scores["mean"]["psnr"]) < 1e-3
        assert scores["command"].startswith("python -m qsci evaluate --model " + name)


def test_packed_files_shrink_with_bit_depth():
    sizes = {m["bits"]: m["size_bytes"] for m in MANIFEST["models"]}
    assert sizes[2] < sizes[3] < sizes[4] < sizes[8] < sizes[32]


@pytest.mark.parametrize("name", NAMES)
def test_every_manifest_model_reconstructs_a_small_scene(name):
    info = get_method(name)
    assert info.available and info.source == "ours"
    gt = load_scene("drop8").gt[0, :, 96:160, 96:160]  # (8, 64, 64)
    mask = random_binary_mask(8, 64, 64, seed=5)
    y = simulate_measurement(gt, mask)
    res = reconstruct(y, mask, name, gt=gt)
    assert res.frames.shape == (1, 8, 64, 64) and np.isfinite(res.frames).all()
    assert res.weights == "trained"
    assert res.backend == ("fp32" if info.bits == 32 else "int8")
    assert res.psnr_mean > 8.0  # a blank output scores 4.3 dB, the raw network input 7.2 dB on this crop
