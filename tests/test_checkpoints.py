"""Authors' checkpoint layouts: synthetic files from the schema load strictly and run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from qsci.cli import main as cli_main
from qsci.deploy.weights import load_check, load_model, load_official, read_state_dict
from qsci.errors import QSCIError
from qsci.models import create_model
from qsci.models.checkpoints import VARIANTS, detect_variant, estimate_bits, save_model

FILE_NAMES = {"qsci_8bit": "8bit.pth", "qsci_4bit": "4bit.pth", "qsci_3bit": "3bit.pth",
              "qsci_2bit": "2bit.pth", "efficientsci_s_fp": "full_precision.pth",
              "efficientsci_b_fp": "efficientsci_base.pth"}


@pytest.fixture(scope="module")
def schema(reference_file) -> dict:
    return json.loads(reference_file("official_checkpoint_schemas.json").read_text())


def synthetic_state_dict(entries: dict[str, list[int]], bits: int, seed: int = 0) -> dict:
    """Random values with realistic quantizer entries (LSQ-initialised weight steps)."""
    g = torch.Generator().manual_seed(seed)
    sd = {name: torch.randn(shape, generator=g) * 0.05 for name, shape in entries.items()}
    for name, shape in entries.items():
        leaf = name.rsplit(".", 1)[-1]
        if name.endswith(".act.alpha") or name.endswith("_act.alpha"):
            sd[name] = torch.rand(shape, generator=g) * 0.05 + 0.01
        elif name.endswith(".zero_point"):
            sd[name] = torch.randint(-2, 3, shape, generator=g).float()
        elif leaf == "init_state":
            sd[name] = torch.ones(shape)
        elif leaf == "signed":
            sd[name] = torch.randint(0, 2, shape, generator=g).float()
        elif leaf == "alpha":
            w = sd[name[: -len("alpha")] + "weight"]
            side = "_2." in name or name.startswith("vrm_conv3_2")
            qp = 2 ** ((8 if side else bits) - 1) - 1
            sd[name] = 2 * w.abs().reshape(w.shape[0], -1).mean(1) / math.sqrt(qp)
    return sd


def _bits(variant: str) -> int:
    return int(variant.split("_")[1][:-3]) if variant.startswith("qsci_") else 32


@pytest.mark.parametrize("variant", VARIANTS)
def test_synthetic_official_file_loads_strictly_and_runs(variant, schema, tmp_path):
    sd = synthetic_state_dict(schema[variant]["state_dict"], _bits(variant))
    path = tmp_path / FILE_NAMES[variant]
    wrapped = {"model_state_dict": sd} if variant.endswith("fp") else {f"module.{k}": v for k, v in sd.items()}
    torch.save(wrapped, path)
    assert detect_variant(read_state_dict(path), path) == variant
    report = load_check(path)
    assert report == {"variant": variant, "missing": [], "unexpected": [], "mismatched": [], "ok": True}
    model, got = load_official(path)
    assert got == variant and model.config.bits == _bits(variant)
    assert sum(p.numel() for p in model.parameters()) == schema[variant]["params"]
    with torch.no_grad():
        y = model(torch.rand(1, 1, 4, 8, 8))  # tiny: the full S/B networks run on a shared CPU
    assert y.shape == (1, 4, 8, 8) and torch.isfinite(y).all()


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_bit_width_estimated_without_file_name(bits, schema):
    entries = {k: v for k, v in schema["qsci_4bit"]["state_dict"].items()
               if k.startswith(("resdnet_list.0.", "resdnet_list.1.", "fem_conv1_1."))}
    sd = synthetic_state_dict(entries, bits, seed=bits)
    assert estimate_bits(sd) == bits
    assert detect_variant(sd) == f"qsci_{bits}bit"


def test_quantized_layer_output_by_hand(schema, tmp_path):
    """One loaded 4-bit layer's output re-derived from the spec formulas (section 5)."""
    path = tmp_path / "4bit.pth"
    torch.save(synthetic_state_dict(schema["qsci_4bit"]["state_dict"], 4, seed=7), path)
    model, _ = load_official(path)
    layer = model.resdnet_list[0].cformer_list[1].ffn[2]  # 1x1x1 conv, 64 -> 64, 4 bits
    seen = {}
    layer.register_forward_hook(lambda m, i, o: seen.update(x=i[0].detach(), y=o.detach()))
    with torch.no_grad():
        model(torch.rand(1, 1, 4, 8, 8))
    x, y = seen["x"].double(), seen["y"].double()  # (1, 64, T, h, w)
    signed = layer.act.signed.item() == 1
    qmin, qmax = (-8, 7) if signed else (0, 15)
    a = layer.act.alpha.detach().double().view(1, -1, 1, 1, 1)
    zr = torch.round(layer.act.zero_point.detach().double()).view(1, -1, 1, 1, 1)
    xq = (torch.round(torch.clamp(x / a + zr, qmin, qmax)) - zr) * a
    w = layer.weight.detach().double()[:, :, 0, 0, 0]  # (O, I)
    aw = layer.alpha.detach().double()[:, None]
    wq = torch.round(torch.clamp(w / aw, -8, 7)) * aw
    ref = torch.einsum("oi,bithw->bothw", wq, xq) + layer.bias.detach().double().view(1, -1, 1, 1, 1)
    assert torch.allclose(y, ref, atol=1e-4)


def test_broken_files_are_user_errors(schema, tmp_path):
    bad = tmp_path / "junk.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(QSCIError, match="junk.pth"):
        read_state_dict(bad)
    sd = synthetic_state_dict(schema["efficientsci_s_fp"]["state_dict"], 32)
    sd.pop("vrm.4.bias")
    sd["fem.2.weight"] = torch.zeros(1)
    sd["extra.weight"] = torch.zeros(1)
    path = tmp_path / "fp.pth"
    torch.save(sd, path)
    report = load_check(path)
    assert not report["ok"] and report["missing"] == ["vrm.4.bias"]
    assert report["unexpected"] == ["extra.weight"] and len(report["mismatched"]) == 1
    with pytest.raises(QSCIError, match="does not match"):
        load_official(path)
    assert cli_main(["load-check", str(path)]) == 1
    with pytest.raises(QSCIError, match="not an EfficientSCI"):
        detect_variant({"x": torch.zeros(1)})


def test_own_checkpoint_roundtrip_and_cli(tmp_path, capsys):
    model = create_model("qsci-t-4bit", units=1, per_channel_act=False)
    model(torch.rand(1, 1, 2, 8, 8))  # initialise quantizer steps
    path = save_model(tmp_path / "m.pth", model, epoch=3)
    again = load_model(path)
    assert again.config == model.config
    x = torch.rand(1, 1, 2, 8, 8)
    with torch.no_grad():
        assert torch.equal(again(x), model.eval()(x))
    assert cli_main(["load-check", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["variant"] == "qsci-t-4bit" and out["ok"]


def _own_file(tmp_path, name: str, edit) -> Path:
    """A `save_model` file of a tiny 4-bit network whose state dict `edit` changes in place."""
    model = create_model("qsci-t-4bit", units=1, per_channel_act=False)
    path = save_model(tmp_path / name, model)
    obj = torch.load(path, weights_only=True)
    edit(obj["model_state_dict"])
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("name, edit, problem", [
    ("missing.pth", lambda sd: sd.pop("fem_conv1_1.0.bias"), "1 problems: 1 missing; e.g. fem_conv1_1.0.bias"),
    ("extra.pth", lambda sd: sd.update({"extra.weight": torch.zeros(2)}), "1 problems: 1 unexpected; e.g. extra.weight"),
    ("shape.pth", lambda sd: sd.update({"fem_conv1_1.0.bias": torch.zeros(3)}), "1 problems: 1 mismatched; e.g. fem_conv1_1.0.bias: file [3]"),
])
def test_own_checkpoint_with_wrong_keys_is_a_user_error(tmp_path, capsys, name, edit, problem):
    """Strict loading: a key too few, too many or of the wrong shape is refused, naming the file."""
    path = _own_file(tmp_path, name, edit)
    with pytest.raises(QSCIError) as err:
        load_model(path)
    assert str(err.value).startswith(f"{name}: does not match the qsci-t-4bit model ({problem}")
    # the CLI prints that one line and exits 2 (a user error), not "internal error" and 1
    np.save(tmp_path / "meas.npy", np.ones((1, 8, 8), np.float32))
    np.save(tmp_path / "mask.npy", np.ones((2, 8, 8), np.float32))
    code = cli_main(["reconstruct", "--meas", str(tmp_path / "meas.npy"), "--mask", str(tmp_path / "mask.npy"),
                     "--model", "qsci-t-4bit", "--checkpoint", str(path), "--out", str(tmp_path / "out.npz")])
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err_lines[-1].startswith(f"error: {name}: does not match the qsci-t-4bit model (")
    assert not (tmp_path / "out.npz").exists()
