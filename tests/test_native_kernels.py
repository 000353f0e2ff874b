"""The compiled C passes of the int8 graph (qsci/deploy/int8/kernels.c via native.py).

Each fused pass must give the values of the torch passes it replaces (codes equal; the fused
attention equal to the eager planar path on trained-shape models), and the graph must run with
the kernels switched off. CI has a C compiler: a missing build fails here, it is not skipped.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from qsci.bench import calibrate
from qsci.deploy.int8 import Int8TSAB, channel_passes, convert_to_int8, native, onednn_available, quantize_codes
from qsci.deploy.int8.codes import _as_uint8
from qsci.models import create_model
from qsci.quant import ActQuantizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def kernels_on():
    assert native.library() is not None, f"C kernels did not build: {native.status()}"
    native.set_enabled(True)
    yield
    native.set_enabled(True)


def _torch_codes(x: torch.Tensor, scale: float, zp: int, code_max: int) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = _as_uint8(torch.quantize_per_tensor(x.float(), scale, zp, torch.quint8))
    return u.clamp_(max=code_max)


@pytest.mark.parametrize("zp,code_max", [(0, 255), (7, 15), (3, 3)])
def test_leaky_codes_equal_leaky_relu_then_quantize(kernels_on, zp, code_max):
    torch.manual_seed(zp)
    x = (torch.randn(2, 6, 4, 10, 12) * 3).contiguous(memory_format=torch.channels_last_3d)
    x.permute(0, 2, 3, 4, 1).reshape(-1)[:64] = torch.arange(64) * 0.025 - 0.8  # ties of x / scale at .5
    got = native.leaky_codes(x, 0.1, 0.05, zp, code_max)
    want = _torch_codes(F.leaky_relu(x, 0.1), 0.05, zp, code_max)
    assert got.stride() == x.stride() and got.dtype == torch.uint8
    assert torch.equal(got, want)
    assert torch.equal(native.leaky_codes(x, None, 0.05, zp, code_max), _torch_codes(x, 0.05, zp, code_max))


def test_sum_and_row_codes_equal_the_torch_passes(kernels_on):
    torch.manual_seed(1)
    a = torch.randn(1, 8, 3, 6, 6).contiguous(memory_format=torch.channels_last_3d)
    b = torch.randn(1, 8, 3, 6, 6).contiguous(memory_format=torch.channels_last_3d)
    u1, u2 = native.sum_codes(a, b, 0.1, (0.04, 5, 15), (0.01, 128, 255))
    s = F.leaky_relu(a, 0.1) + b
    assert torch.equal(u1, _torch_codes(s, 0.04, 5, 15)) and torch.equal(u2, _torch_codes(s, 0.01, 128, 255))
    v1, v2 = native.sum_codes(a, None, 1.0, (0.04, 5, 15), (0.01, 128, 255))  # one tensor, two layers' codes
    assert torch.equal(v1, _torch_codes(a, 0.04, 5, 15)) and torch.equal(v2, _torch_codes(a, 0.01, 128, 255))
    acc = a.clone()
    u = native.add_codes(acc, b, 0.05, 2, 7)  # a residual sum in place, and its codes
    assert torch.equal(acc, a + b) and torch.equal(u, _torch_codes(a + b, 0.05, 2, 7))
    # a channel slice of a channels-last tensor (a ResDNet group) quantizes without a dense copy
    wide = torch.randn(2, 10, 3, 4, 6).contiguous(memory_format=torch.channels_last_3d)
    part = wide[:, 4:]
    assert native.row_stride(part) == 10 and native.row_stride(wide) == 10
    assert native.row_stride(torch.randn(1, 4, 2, 3, 3)) is None  # channels-first
    rows = native.row_codes(part, 0.05, 9, 15)
    assert torch.equal(rows, _torch_codes(part.contiguous(memory_format=torch.channels_last_3d), 0.05, 9, 15)
                       .permute(0, 2, 3, 4, 1).reshape(-1, 6))
    out = torch.zeros(rows.shape[0], 9, dtype=torch.uint8)
    native.row_codes(part, 0.05, 9, 15, out=out[:, 2:8])  # into a column slice of a wider buffer
    assert torch.equal(out[:, 2:8], rows) and not out[:, :2].any() and not out[:, 8:].any()


def test_bad_arguments_are_refused(kernels_on):
    x = torch.randn(1, 4, 2, 4, 4)
    with pytest.raises(ValueError, match="dense float32"):
        native.leaky_codes(x[..., ::2], 0.1, 0.1, 0, 15)
    with pytest.raises(ValueError, match="one layout"):
        native.sum_codes(x, x.contiguous(memory_format=torch.channels_last_3d), 1.0, (0.1, 0, 15), (0.1, 0, 15))
    with pytest.raises(ValueError, match="channels-last"):
        native.row_codes(x, 0.1, 0, 15)


def _trained_shape_model(bits: int, in_ch: int = 8) -> torch.nn.Module:
    torch.manual_seed(bits)
    model = create_model(f"qsci-t-{bits}bit", in_ch=in_ch, units=1, per_channel_act=False).eval()
    calibrate(model, (8, 16, 16), seed=bits)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, ActQuantizer):
                m.zero_point.uniform_(-1.4, 1.4)
                if name.endswith("attn_act"):  # softmax codes: the kernel's (one-pass) range, as trained
                    m.zero_point.abs_()
    return model


@pytest.mark.skipif(not onednn_available(), reason="the fused int8 graph needs the oneDNN ops")
@pytest.mark.parametrize("bits,in_ch", [(4, 8), (2, 8), (4, 16)])
def test_fused_graph_with_kernels_equals_it_without(kernels_on, bits, in_ch):
    """Same model, same input: the C attention, LeakyReLU/sum/row codes give the eager graph's output.
    in_ch 16 gives the T preset's attention width (16 columns: the kernel's transposed write-back)."""
    model = _trained_shape_model(bits, in_ch)
    m8 = convert_to_int8(model)
    tsabs = [m for m in m8.modules() if isinstance(m, Int8TSAB)]
    x0 = torch.rand(1, 1, 8, 32, 48)
    with torch.inference_mode():
        native.set_enabled(False)
        eager = m8(x0)
        native.set_enabled(True)
        native.set_bf16_mids(False)  # fp32 conv outputs: the C passes must then give eager's values
        try:
            fused = m8(x0)
        finally:
            native.set_bf16_mids(True)
    assert tsabs and all(t._planar["native"] is not None for t in tsabs)  # the kernel path ran
    assert fused.shape == eager.shape == (1, 8, 32, 48)
    # exp in the kernel is a polynomial (about 1 ulp from torch's): a rare attention code may flip
    differ = float((fused - eager).abs().gt(1e-5).float().mean())
    assert differ < 0.01, f"{differ:.2%} of the outputs differ"
    if in_ch == 8:  # wider 4-bit networks spread float rounding further (about 12% at in_ch 16, eager too)
        ref = model(x0)
        assert float((fused - ref).abs().gt(1e-4 * ref.abs().max()).float().mean()) < 0.02


def test_switched_off_by_environment(monkeypatch):
    native.library.cache_clear()
    monkeypatch.setenv("QSCI_NATIVE", "0")
    try:
        assert native.library() is None and not native.active()
        assert "QSCI_NATIVE=0" in native.status()
        x = torch.randn(1, 4, 2, 4, 4).contiguous(memory_format=torch.channels_last_3d)
        assert torch.equal(quantize_codes(x, 0.1, 3, 15), _torch_codes(x, 0.1, 3, 15))  # torch path intact
    finally:
        monkeypatch.delenv("QSCI_NATIVE")
        native.library.cache_clear()
    assert native.library() is not None


def test_loading_the_kernels_keeps_subnormal_floats(kernels_on):
    """Linked with -ffast-math, a shared library turns on flush-to-zero for the whole process
    (hypothesis then refuses to run); the build compiles with it but links without it."""
    import numpy as np

    tiny = np.nextafter(np.float32(0), np.float32(1))
    assert tiny * np.float32(2) > 0
    assert float(torch.tensor(1e-40) * 2) > 0


def test_bf16_inputs_equal_the_widened_fp32_pass(kernels_on):
    """The bf16 variants read conv outputs of half the bytes; widening bf16 to fp32 is exact, so
    they must give the fp32 passes' codes (and sums) on the widened values."""
    torch.manual_seed(3)
    a = (torch.randn(1, 8, 4, 10, 12) * 3).contiguous(memory_format=torch.channels_last_3d).bfloat16()
    b = (torch.randn(1, 8, 4, 10, 12) * 3).contiguous(memory_format=torch.channels_last_3d).bfloat16()
    assert torch.equal(native.leaky_codes(a, 0.1, 0.05, 7, 15), native.leaky_codes(a.float(), 0.1, 0.05, 7, 15))
    q1, q2 = (0.07, 5, 15), (0.01, 120, 255)
    for other in (b, None):
        got = native.sum_codes(a, other, 0.1, q1, q2)
        want = native.sum_codes(a.float(), None if other is None else other.float(), 0.1, q1, q2)
        assert all(torch.equal(g, w) for g, w in zip(got, want))
    s1, s2 = torch.randn(a.shape).contiguous(memory_format=torch.channels_last_3d), None
    s2 = s1.clone()
    assert torch.equal(native.add_codes(s1, b, 0.05, 3, 15), native.add_codes(s2, b.float(), 0.05, 3, 15))
    assert torch.equal(s1, s2)
    with pytest.raises(ValueError, match="bfloat16"):
        native.sum_codes(a, b.float(), 0.1, q1, q2)  # mixed dtypes


def test_mid_dtype_follows_the_switches(kernels_on):
    assert native.mid_dtype() == torch.bfloat16
    native.set_bf16_mids(False)
    try:
        assert native.mid_dtype() == torch.float32
    finally:
        native.set_bf16_mids(True)
    native.set_enabled(False)
    assert native.mid_dtype() == torch.float32  # the torch passes read fp32 only
    native.set_enabled(True)


def test_bf16_intermediates_keep_trained_scores(kernels_on, monkeypatch):
    """The default int8 graph (bf16 conv outputs into the C passes) scores within 0.1 dB of
    fake-quant against ground truth on a benchmark crop (the agreement criterion of issue 14),
    and really passes bf16 tensors."""
    from qsci import zoo
    from qsci.engine import reconstruct
    from qsci.scenes import load_scene

    sc = load_scene("drop8")
    mask, gt = sc.mask[:, 64:192, 64:192], sc.gt[0][:, 64:192, 64:192]
    meas = (gt * mask).sum(0)[None]
    seen = []
    real = native.sum_codes
    monkeypatch.setattr(native, "sum_codes", lambda a, *r: seen.append(a.dtype) or real(a, *r))
    int8 = reconstruct(meas, mask, zoo.load_runner("qsci-t-gap-4bit", "int8"), gt=gt[None])
    fq = reconstruct(meas, mask, zoo.load_runner("qsci-t-gap-4bit", "fakequant"), gt=gt[None])
    assert int8.backend == "int8" and torch.bfloat16 in seen
    assert abs(int8.psnr_mean - fq.psnr_mean) <= 0.1 and fq.psnr_mean > 25


@pytest.mark.parametrize("shape", [(1, 12, 3, 8, 10), (37, 12)])
def test_per_channel_passes_equal_the_torch_ones(kernels_on, shape):
    """The authors' per-channel layers: codes and term sums in one C pass each, torch's values exactly."""
    from qsci.deploy.int8.codes import quantize_codes_per_channel

    g = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=g) * 4
    if x.ndim == 5:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    c = shape[1]
    step = torch.rand(c, generator=g, dtype=torch.float64) * 0.5 + 0.02
    lo = torch.randint(0, 3, (c,), generator=g).double()
    hi = lo + torch.randint(3, 15, (c,), generator=g).double()
    x[(0, slice(None)) + (0,) * (x.ndim - 2)] = step.float() * 2.5  # ties of x / step at .5
    for shift, zp, offset in ((True, 5, torch.full((c,), 5.0, dtype=torch.float64)),
                              (False, None, torch.randint(0, 9, (c,), generator=g).double())):
        params = channel_passes.channel_params(step, offset, lo, hi, multiply=shift)
        assert channel_passes.channel_codes_apply(x, 1)
        ours = channel_passes.channel_codes(x, params)
        ref = quantize_codes_per_channel(x, step, offset, lo, hi, 1, zp=zp)
        assert ours.stride() == x.stride() and torch.equal(ours, ref), f"shift={shift}"
    o = c // 3
    y = torch.randn(shape, generator=g)
    y = y.contiguous(memory_format=torch.channels_last_3d) if y.ndim == 5 else y
    summed = channel_passes.sum_terms(y, 3)
    assert torch.equal(summed, y.narrow(1, 0, o) + y.narrow(1, o, o) + y.narrow(1, 2 * o, o))
    assert channel_passes.sum_terms(y.transpose(0, 1), 3) is None  # not channel rows: the caller's torch path
    if x.ndim == 2:  # the attention's q/k/v quantizers on the qkv rows: fake_quant_via_codes's values
        from qsci.deploy.int8.codes import fake_quant_via_codes

        lo8, hi8 = (128 - 4 + lo).to(torch.uint8).reshape(1, -1), (128 - 4 + hi).to(torch.uint8).reshape(1, -1)
        ref = fake_quant_via_codes(x.clone(), 1, step, lo8, hi8)
        assert torch.equal(channel_passes.channel_fake_quant_(x.clone(), step, lo8, hi8), ref)
