"""EfficientSCI / Q-SCI networks: sizes, registry, shapes, gradients, QAT initialisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from qsci.errors import QSCIError
from qsci.models import (ModelConfig, QSCINet, build_model, create_model, get_config, init_from_fp,
                         list_models)
from qsci.models.blocks import pixel_shuffle_frames, pixel_unshuffle_frames
from qsci.quant import QConv3d

TINY = dict(in_ch=8, units=1)  # smallest sizes every preset's group count allows


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name,count", [("qsci-s-fp32", 3_777_025), ("qsci-b-fp32", 8_824_321),
                                        ("qsci-s-8bit", 3_802_564), ("qsci-s-4bit", 3_845_128)])
def test_parameter_counts(name, count):
    assert n_params(create_model(name)) == count


def test_registry_names_and_overrides():
    names = list_models()
    for p in "tsb":
        for tag in ("fp32", "8bit", "4bit", "3bit", "2bit"):
            assert f"qsci-{p}-{tag}" in names
    cfg = get_config("qsci-s-4bit", in_ch=None, units=2, per_channel_act=False)
    assert (cfg.in_ch, cfg.units, cfg.group_num, cfg.bits, cfg.per_channel_act) == (32, 2, 2, 4, False)
    assert cfg.name == "qsci-s-4bit"
    with pytest.raises(QSCIError, match="did you mean"):
        create_model("qsci-s-4bits")
    with pytest.raises(QSCIError, match="unknown model options"):
        create_model("qsci-t-fp32", width=3)
    with pytest.raises(QSCIError):
        ModelConfig(preset="t", bits=5 + 20)


@pytest.mark.parametrize("name", list_models())
def test_every_model_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name, **TINY)
    x = torch.rand(1, 1, 3, 4, 6)  # any T, any even H, W
    y = model(x)
    assert y.shape == (1, 3, 4, 6) and torch.isfinite(y).all()
    y.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert isinstance(model, QSCINet) == (model.config.bits < 8)


def test_odd_size_and_bad_rank_are_user_errors():
    model = create_model("qsci-t-fp32", **TINY)
    with pytest.raises(QSCIError, match="even"):
        model(torch.rand(1, 1, 2, 5, 6))
    with pytest.raises(QSCIError, match="B, 1, T, H, W"):
        model(torch.rand(1, 2, 6, 6))


def test_config_roundtrip_rebuilds_same_model():
    cfg = get_config("qsci-t-3bit", units=1, per_channel_act=False)
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg
    a, b = build_model(cfg), build_model(cfg.to_dict())
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}
    q = [m for m in a.modules() if isinstance(m, QConv3d)]
    assert all(m.act.alpha.numel() == 1 for m in q)
    with pytest.raises(QSCIError, match="unknown fields"):
        ModelConfig.from_dict({**cfg.to_dict(), "colour": 3})


def test_pixel_shuffle_roundtrip():
    x = torch.randn(2, 3, 4, 6, 8)
    y = pixel_unshuffle_frames(x)
    assert y.shape == (2, 12, 4, 3, 4)
    assert torch.equal(pixel_shuffle_frames(y), x)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d])
def test_pixel_shuffle_is_torchs_per_frame(layout):
    """Both code paths (einops pattern, channels-last F.pixel_shuffle) equal torch's op frame by frame."""
    x = torch.randn(2, 12, 3, 4, 5).contiguous(memory_format=layout)
    y = pixel_shuffle_frames(x)
    assert torch.equal(y, torch.stack([F.pixel_shuffle(x[:, :, i], 2) for i in range(3)], dim=2))
    z = torch.randn(2, 3, 3, 4, 6).contiguous(memory_format=layout)
    expected = torch.stack([F.pixel_unshuffle(z[:, :, i], 2) for i in range(3)], dim=2)
    assert torch.equal(pixel_unshuffle_frames(z), expected)


@pytest.mark.parametrize("bits", [8, 4])
def test_init_from_fp_copies_main_path(bits):
    fp = create_model("qsci-t-fp32", **TINY)
    q = create_model(f"qsci-t-{bits}bit", **TINY)
    report = init_from_fp(q, fp)
    sd = q.state_dict()
    main = "fem_conv1_1.0.weight" if bits < 8 else "fem.0.weight"
    assert torch.equal(sd[main], fp.state_dict()["fem.0.weight"])
    last = "vrm_conv3_1.bias" if bits < 8 else "vrm.4.bias"
    assert torch.equal(sd[last], fp.state_dict()["vrm.4.bias"])
    assert len(report["copied"]) == len(fp.state_dict())
    if bits < 8:
        assert "fem_conv3_2.0.weight" in report["fresh"]


def test_quantized_8bit_tracks_full_precision():
    """With the same weights, the 8-bit graph follows the float one (sanity of the graph).

    The first-batch LSQ step (2 mean|x| / sqrt(Qp)) is coarse before training, hence loose bounds.
    """
    torch.manual_seed(1)
    fp = create_model("qsci-t-fp32", **TINY).eval()
    q = create_model("qsci-t-8bit", **TINY).eval()
    init_from_fp(q, fp)
    x = torch.rand(1, 1, 4, 8, 8)
    with torch.no_grad():
        ref, out = fp(x), q(x)
    assert (out - ref).abs().max() < 0.3 * ref.abs().max()
    assert torch.corrcoef(torch.stack([out.flatten(), ref.flatten()]))[0, 1] > 0.9
