"""Complexity counts against hand-derived formulas for tiny networks (spec section 4 graph)."""

from __future__ import annotations

import json

import pytest

from qsci.cli import main as cli_main
from qsci.deploy.complexity import count, parse_size
from qsci.errors import QSCIError
from qsci.models import create_model

TINY = dict(in_ch=8, units=2, group_num=2)


def hand_macs(c: int, u: int, gn: int, t: int, h: int, w: int, side: bool) -> dict[str, int]:
    """MACs by layer family from the architecture description, batch 1."""
    full, half = t * h * w, t * (h // 2) * (w // 2)  # positions at full / half resolution
    g = 4 * c // gn
    fem = full * (1 * c * 147 + c * 2 * c * 27) + half * 2 * c * 4 * c * 27
    cformer = half * (2 * g * g * 9 + g * g * 27 + g * g + g * (3 * g // 2) + (g // 2) * g)
    dense = sum(half * (i + 1) * g * g for i in range(1, gn))
    attention = u * gn * 2 * (h // 2) * (w // 2) * t * t * (g // 2)
    body = u * (gn * cformer + dense + half * 16 * c * c)
    up = half * 4 * c * 8 * c
    vrm = full * (2 * c * 2 * c * 27 + 2 * c * c + c * 27)
    branches = full * (c + c * 2 * c + 2 * c * 2 * c + 2 * c * c + c) + half * 8 * c * 4 * c if side else 0
    return {"main": fem + body + up + vrm, "attention": attention, "side": branches}


def test_parse_size():
    assert parse_size("256x128x8") == (8, 256, 128)
    with pytest.raises(QSCIError):
        parse_size("256x256")


@pytest.mark.parametrize("bits", [32, 8, 4, 2])
def test_counts_match_hand_formula(bits):
    t, h, w = 3, 12, 8
    name = "qsci-t-fp32" if bits == 32 else f"qsci-t-{bits}bit"
    model = create_model(name, **TINY)
    got = count(model, (t, h, w))
    hand = hand_macs(8, 2, 2, t, h, w, side=bits < 8)
    assert got.macs == sum(hand.values())
    a = bits  # weights and activations of the main path and attention at `bits`
    expected_bops = (hand["main"] + hand["attention"]) * a * a + hand["side"] * 64
    assert got.bops == expected_bops
    assert got.params == sum(p.numel() for p in model.parameters())
    fp = hand_macs(8, 2, 2, t, h, w, side=False)
    assert got.theoretical_speedup == pytest.approx(sum(fp.values()) * 1024 / expected_bops)


def test_size_bytes_counts_quantized_weights_at_their_bits():
    fp = create_model("qsci-t-fp32", **TINY)
    assert count(fp, (2, 4, 4)).size_bytes == 4 * sum(v.numel() for v in fp.state_dict().values())
    q = create_model("qsci-t-8bit", **TINY)
    sd = q.state_dict()
    weights = sum(v.numel() for k, v in sd.items() if k.endswith(".weight"))  # all quantized at 8 bits
    rest = sum(v.numel() for k, v in sd.items() if not k.endswith(".weight"))
    assert count(q, (2, 4, 4)).size_bytes == weights + 4 * rest


def test_counting_leaves_model_untouched_and_cli(capsys):
    model = create_model("qsci-t-4bit", **TINY)
    count(model, (2, 4, 4))
    assert all(b.item() == 0 for n, b in model.named_buffers() if n.endswith("init_state"))
    assert cli_main(["complexity", "--model", "qsci-t-8bit", "--size", "16x16x4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"params", "macs", "bops", "size_bytes", "theoretical_speedup"}
    assert out["theoretical_speedup"] == pytest.approx(16.0)


def test_stored_s_preset_bops_are_what_the_counter_gives():
    """The chart's stored BOPs of the five S-preset models (qsci.plots), recounted: the one recount."""
    from qsci.plots import S_PRESET_BOPS

    recount = {bits: count(create_model("qsci-s-fp32" if bits == 32 else f"qsci-s-{bits}bit", per_channel_act=False),
                           (8, 256, 256)).bops for bits in S_PRESET_BOPS}
    assert sorted(S_PRESET_BOPS) == [2, 3, 4, 8, 32] and recount == S_PRESET_BOPS


def test_s_preset_fp_macs_at_benchmark_size():
    """The S network at 256x256x8: 563.41 GMACs; the paper quotes 563.87 G "ops"."""
    got = count(create_model("qsci-s-fp32"), (8, 256, 256))
    assert got.macs == sum(hand_macs(32, 8, 2, 8, 256, 256, side=False).values()) == 563_412_467_712
