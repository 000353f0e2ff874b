"""Packed integer checkpoints: bit packing, file size by bit depth, exact round trip."""

from __future__ import annotations

import pytest
import torch

from qsci.bench import calibrate
from qsci.deploy.packing import pack_bits, pack_state_dict, save_packed, unpack_bits, unpack_into
from qsci.deploy.weights import load_model, read_packed
from qsci.errors import QSCIError
from qsci.models import create_model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(tag: str, seed: int = 0, per_channel_act: bool = False) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = create_model(f"qsci-t-{tag}", in_ch=16, units=1, per_channel_act=per_channel_act).eval()
    if tag != "fp32":
        calibrate(m, (8, 16, 16), seed=seed)
    return m


@pytest.mark.parametrize("bits", range(1, 9))
def test_bit_packing_round_trip(bits):
    for n in (1, 7, 8, 9, 101):
        codes = torch.randint(0, 2**bits, (n,), dtype=torch.uint8)
        packed = pack_bits(codes, bits)
        assert packed.dtype == torch.uint8 and packed.numel() == (n * bits + 7) // 8
        assert torch.equal(unpack_bits(packed, bits, n), codes)


@pytest.mark.parametrize("tag,per_channel", [("4bit", False), ("2bit", False), ("8bit", True), ("fp32", False)])
def test_round_trip_gives_identical_outputs(tmp_path, tag, per_channel):
    src = _model(tag, seed=1, per_channel_act=per_channel)
    path = save_packed(src, tmp_path / f"{tag}.pt")
    packed = torch.load(path, weights_only=True)
    dst = create_model(f"qsci-t-{tag}", in_ch=16, units=1, per_channel_act=per_channel).eval()
    unpack_into(dst, packed)
    x0 = torch.rand(1, 1, 8, 16, 16)
    with torch.inference_mode():
        assert torch.equal(src(x0), dst(x0))
        assert torch.equal(src(x0), load_model(path)(x0))  # config stored in the file


def test_file_size_reflects_bit_depth(tmp_path):
    sizes = {tag: save_packed(_model(tag), tmp_path / f"{tag}.pt").stat().st_size
             for tag in ("fp32", "8bit", "4bit", "2bit")}
    assert sizes["4bit"] < 0.75 * sizes["8bit"] < 0.75 * sizes["fp32"]
    assert sizes["2bit"] < sizes["4bit"]
    plain = tmp_path / "plain.pt"
    torch.save(_model("4bit").state_dict(), plain)
    assert sizes["4bit"] < 0.25 * plain.stat().st_size


def test_packed_form_holds_only_safe_types_and_errors():
    packed = pack_state_dict(_model("3bit"))
    assert packed["config"]["bits"] == 3 and packed["qweights"]["codes"].dtype == torch.uint8
    with pytest.raises(QSCIError, match="does not fit"):
        unpack_into(create_model("qsci-t-3bit", in_ch=8, units=1, per_channel_act=False), packed)
    with pytest.raises(QSCIError, match="not initialised"):
        pack_state_dict(create_model("qsci-t-3bit", in_ch=8, units=1))
    with pytest.raises(QSCIError, match="not a packed"):
        unpack_into(create_model("qsci-t-3bit"), {"format": "other"})


def test_read_packed_rejects_other_files(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(QSCIError, match="not a packed"):
        read_packed(other)
    with pytest.raises(QSCIError, match="not found"):
        read_packed(tmp_path / "missing.pt")
