"""Integer-kernel conversion: the int8 model computes what the fake-quantized model computes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from qsci.bench import calibrate, int8_agreement
from qsci.deploy.int8 import (FusedFakeQuant, Int8CFormer, Int8Conv3d, Int8Linear, Int8QSCINet, Int8ResDNet,
                              Int8TSAB, convert_to_int8, int8_layers, onednn_available, quantize_codes)
from qsci.deploy.int8.blocks import _shuffle_codes, _shuffle_order, _unshuffle_rows
from qsci.models.blocks import pixel_shuffle_frames, pixel_unshuffle_frames
from qsci.errors import QSCIError
from qsci.models import create_model
from qsci.quant import ActQuantizer, QConv3d, QLinear
from qsci.scenes import simulate_scene

TINY = dict(in_ch=4, units=1, per_channel_act=False)
KERNELS = ["reference"] + (["onednn"] if onednn_available() else [])


# the int8 graph to float rounding: fp32 intermediates (bf16 ones: tests/test_native_kernels.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread", "fp32_intermediates")


def _psnr_between(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    peak = float(a.abs().max())
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def _tiny(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model(name, **TINY).eval()
    calibrate(model, (8, 16, 16), seed=seed)
    # learned zero points are rarely 0: exercise the shifted-code path too
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ActQuantizer):
                m.zero_point.uniform_(-1.4, 1.4)
    return model


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("bits", [8, 4, 3, 2])
def test_int8_model_matches_fake_quant(bits, kernel):
    model = _tiny(f"qsci-t-{bits}bit", seed=bits)
    m8 = convert_to_int8(model, kernel=kernel)
    n_q = sum(isinstance(m, (QConv3d, QLinear)) for m in model.modules())
    assert len(int8_layers(m8)) == n_q and not any(isinstance(m, (QConv3d, QLinear)) for m in m8.modules())
    x0 = torch.rand(1, 1, 8, 16, 16)
    with torch.inference_mode():
        ref, out = model(x0), m8(x0)
    assert out.shape == ref.shape and out.dtype == torch.float32
    # equal up to float summation order; a rare tie in rounding may flip one code
    assert _psnr_between(ref, out) > 60
    assert float((out - ref).abs().gt(1e-4 * ref.abs().max()).float().mean()) < 0.01


def test_layer_weights_are_b_bit_integers_and_codes_in_range():
    model = _tiny("qsci-t-3bit")
    m8 = convert_to_int8(model, kernel="reference")
    for layer in int8_layers(m8):
        lo, hi = -(2 ** (layer.bits - 1)), 2 ** (layer.bits - 1) - 1
        assert layer.weight_int.dtype == torch.int8
        assert int(layer.weight_int.min()) >= lo and int(layer.weight_int.max()) <= hi
        assert layer.code_max <= 255
    codes = quantize_codes(torch.randn(1000) * 10, 0.5, 3, 7)
    assert codes.dtype == torch.uint8 and int(codes.max()) <= 7
    ref = (torch.randn(1000) * 10)
    assert all(torch.equal(quantize_codes(ref, 0.5, zp, 7), torch.round(ref / 0.5).add(zp).clamp(0, 7).to(torch.uint8)) for zp in (3, -4))  # the formula, fused and fallback paths
    assert int(quantize_codes(ref, 0.5, -4, 7).max()) <= 7  # out-of-range zero point path


def test_fused_fake_quant_equals_act_quantizer():
    for zp in (0.3, -5.0):  # inside and outside the code range
        q = ActQuantizer(4, 4, per_channel=True, ch_axis=1)
        x = torch.randn(64, 4, 8, 8)
        q(x)
        with torch.no_grad():
            q.zero_point.fill_(zp)
            ref = q(x)
        assert torch.allclose(FusedFakeQuant(q)(x), ref, atol=1e-6)


def test_conversion_errors():
    # per-channel steps convert (folded into the weights: tests/test_int8_fold.py)
    per_channel = create_model("qsci-t-4bit", in_ch=4, units=1).eval()
    calibrate(per_channel, (8, 16, 16))
    assert any(layer.per_channel for layer in int8_layers(convert_to_int8(per_channel)))
    fresh = create_model("qsci-t-4bit", **TINY)
    with pytest.raises(QSCIError, match="not initialised"):
        convert_to_int8(fresh)
    with pytest.raises(QSCIError, match="quantized"):
        convert_to_int8(create_model("qsci-t-fp32", in_ch=4, units=1))


def test_int8_layers_are_wrappers():
    model = _tiny("qsci-t-8bit")
    m8 = convert_to_int8(model)
    kinds = {type(m) for m in int8_layers(m8)}
    assert kinds == {Int8Conv3d, Int8Linear}
    assert model is not m8 and any(isinstance(m, QConv3d) for m in model.modules())


def test_psnr_agreement_check_on_tiny_model():
    torch.manual_seed(0)
    clip = torch.rand(1, 1, 16, 4, 4)
    clip = torch.nn.functional.interpolate(clip, size=(16, 32, 32), mode="trilinear")[0, 0].numpy()
    scene = simulate_scene(clip, cr=8, mask="random", name="tiny")
    model = _tiny("qsci-t-4bit")
    report = int8_agreement(model, [scene], max_diff_db=0.1)
    assert set(report["scenes"]) == {"tiny"}
    assert report["ok"] and abs(report["diff_db"]) <= 0.1


def test_batch_of_two_and_zero_copy_codes():
    """Int8TSAB's frame-major token order also holds for B > 1; codes equal torch's int_repr."""
    model = _tiny("qsci-t-4bit", seed=5)
    m8 = convert_to_int8(model)
    x0 = torch.rand(2, 1, 8, 16, 16)
    with torch.inference_mode():
        ref, out = model(x0), m8(x0)
        single = m8(x0[1:])
    assert out.shape == ref.shape == (2, 8, 16, 16)
    assert _psnr_between(ref, out) > 60 and _psnr_between(out[1:], single) > 60
    x = torch.randn(1, 6, 3, 5, 7).contiguous(memory_format=torch.channels_last_3d) * 3
    codes = quantize_codes(x, 0.05, 3, 255)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expect = torch.quantize_per_tensor(x, 0.05, 3, torch.quint8).int_repr()
    assert codes.dtype == torch.uint8 and not codes.is_quantized and torch.equal(codes, expect)
    assert codes.stride() == x.stride()


needs_onednn = pytest.mark.skipif(not onednn_available(), reason="fused int8 graph needs the oneDNN ops")


@needs_onednn
@pytest.mark.parametrize("bits", [4, 8])
def test_fused_graph_is_used_and_matches_unfused_and_fake_quant(bits):
    """The default conversion runs the fused graph (planar attention, sums in the kernels, codes
    through the (un)shuffles); it agrees with the per-layer path and with fake-quant."""
    model = _tiny(f"qsci-t-{bits}bit", seed=11 + bits)
    fused, plain = convert_to_int8(model), convert_to_int8(model, fuse=False)
    blocks = [m for m in fused.modules() if isinstance(m, (Int8CFormer, Int8ResDNet))]
    assert blocks and all(m.fused for m in blocks)
    assert all(m.planar for m in fused.modules() if isinstance(m, Int8TSAB))
    assert not any(m.fused for m in plain.modules() if isinstance(m, (Int8CFormer, Int8ResDNet)))
    assert not any(m.planar for m in plain.modules() if isinstance(m, Int8TSAB))
    assert isinstance(fused, Int8QSCINet) == (bits < 8) and not isinstance(plain, Int8QSCINet)
    assert len(int8_layers(fused)) == len(int8_layers(plain))
    x0 = torch.rand(2, 1, 8, 16, 24)
    with torch.inference_mode():
        ref, a, b = model(x0), fused(x0), plain(x0)
    assert a.shape == ref.shape == (2, 8, 16, 24)
    assert _psnr_between(ref, a) > 60 and _psnr_between(b, a) > 60
    assert float((a - ref).abs().gt(1e-4 * ref.abs().max()).float().mean()) < 0.01
    with pytest.raises(QSCIError, match="must be even"):  # the float model's input checks still apply
        fused(torch.rand(1, 1, 8, 15, 16))


@needs_onednn
def test_exact_conversion_does_not_fuse():
    m8 = convert_to_int8(_tiny("qsci-t-4bit"), exact=True)
    assert not isinstance(m8, Int8QSCINet)
    assert not any(m.fused for m in m8.modules() if isinstance(m, (Int8CFormer, Int8ResDNet)))


def test_code_shuffles_equal_pixel_shuffles():
    torch.manual_seed(0)
    u = torch.randint(0, 256, (2, 3, 4, 6, 10), dtype=torch.uint8).contiguous(memory_format=torch.channels_last_3d)
    rows = _unshuffle_rows(u)
    expect = pixel_unshuffle_frames(u, 2)  # (2, 12, 4, 3, 5), channels (c, i, j)
    assert rows.shape == (2 * 4 * 3 * 5, 12)
    order = _shuffle_order(3)  # the int8 graph's (i, j, c) channel order
    assert order.tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    assert torch.equal(rows, expect.permute(0, 2, 3, 4, 1).reshape(-1, 12)[:, order])
    back = _shuffle_codes(rows, expect.shape)
    assert back.shape == u.shape and torch.equal(back, pixel_shuffle_frames(expect, 2)) and torch.equal(back, u)


@needs_onednn
def test_split_rows_and_frame_convs_equal_the_plain_layer():
    """A 1x1x1 conv run per concatenated part (summed by the kernels) and a (1,3,3) conv run as a
    2-D conv over frames give the wrapper's own output; add / accum add the residual."""
    torch.manual_seed(1)
    one = QConv3d(12, 8, 1, bits=4, per_channel_act=False)
    spatial = QConv3d(8, 8, (1, 3, 3), padding=(0, 1, 1), bits=4, per_channel_act=False)
    parts = [torch.randn(1, 4, 3, 5, 6), torch.randn(1, 8, 3, 5, 6)]
    with torch.no_grad():
        one(torch.cat(parts, dim=1))
        spatial(torch.randn(1, 8, 3, 5, 6))
    c1, c2 = Int8Conv3d(one), Int8Conv3d(spatial)
    x = torch.cat(parts, dim=1).contiguous(memory_format=torch.channels_last_3d)
    with torch.inference_mode():
        whole = c1(x).permute(0, 2, 3, 4, 1).reshape(-1, 8)
        rows = [c1.codes(p).permute(0, 2, 3, 4, 1).reshape(-1, p.shape[1]) for p in parts]
        res = torch.randn(whole.shape)
        assert torch.allclose(c1.forward_rows(rows), whole, atol=1e-5)
        assert torch.allclose(c1.forward_rows(rows, leaky=0.01), F.leaky_relu(whole, 0.01), atol=1e-5)
        assert torch.allclose(c1.forward_rows(rows, add=res), whole + res, atol=1e-5)
        acc = res.clone()
        out = c1.forward_rows(rows, accum=acc)
        assert torch.allclose(out, whole + res, atol=1e-5)
        y = torch.randn(1, 8, 3, 5, 6).contiguous(memory_format=torch.channels_last_3d)
        assert c2.framewise and not c1.padding[0]
        assert torch.allclose(c2.forward_frames(c2.codes(y)), c2(y), atol=1e-5)


@needs_onednn
@pytest.mark.parametrize("padding,zero_point,width", [((1, 3, 3), 2.0, 11), ((0, 1, 2), 0.0, 11),
                                                     ((1, 3, 3), -1.0, 11), ((1, 3, 3), 4.0, 262)])
def test_width_taps_as_channels_equal_the_one_channel_conv(padding, zero_point, width):
    """The first conv (1 input channel) runs with its width taps as channels: same integer sums
    (not where the kernel zero point is outside 0..255: the padding could not hold it). Rows of
    256+ columns: oneDNN's kernel for them padded frames and rows with code 0, not the zero point."""
    torch.manual_seed(2)
    conv = QConv3d(1, 6, (3, 5, 7), padding=padding, bits=4, per_channel_act=False)
    x = torch.rand(2, 1, 4, 9, width)  # unsigned quantizer: kernel zero point = zero point
    with torch.no_grad():
        conv(x)
        conv.act.zero_point.fill_(zero_point)
    fast, plain = Int8Conv3d(conv), Int8Conv3d(conv)
    plain.fuse = False
    assert fast.width_taps == (zero_point >= 0) and not plain.width_taps
    with torch.inference_mode():
        a, b, ref = fast(x), plain(x), conv(x)
    assert a.shape == b.shape == ref.shape
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, ref, atol=1e-4)
