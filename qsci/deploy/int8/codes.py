"""Floats into the uint8 codes the integer kernels take, and the float fake quantizers that stay.

Code mapping (LSQ+, spec section 5): code `c = clamp(round(x/a + zr), Qn, Qp)`, value
`(c - zr) * a`. The kernel gets `u = c - Qn` in [0, 2^b - 1] (uint8) and zero point `zr - Qn`.
The remaining fake quantizers (TSAB q/k/v/softmax, per head) stay float fake quantizers, done
in place (`FusedFakeQuant`, `Int8TSAB`) with the same arithmetic.
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn as nn

from qsci.errors import QSCIError
from qsci.quant.lsq import ActQuantizer

_QUIET = {"done": False}


@functools.lru_cache(maxsize=1)
def onednn_available() -> bool:
    """True when the oneDNN u8s8 conv3d / linear ops exist and run on this CPU."""
    try:
        w = torch.ones(2, 2, 1, 1, 1, dtype=torch.int8)
        ws = torch.ones(2)
        zp = torch.zeros(2, dtype=torch.long)
        packed = torch.ops.onednn.qconv_prepack(w, ws, 1.0, 0, [1] * 3, [0] * 3, [1] * 3, 1, None)
        x = torch.ones(1, 2, 1, 1, 1, dtype=torch.uint8)
        y = torch.ops.onednn.qconv3d_pointwise(x, 1.0, 0, packed, ws, zp, None, [1] * 3, [0] * 3,
                                               [1] * 3, 1, 1.0, 0, torch.float32, "none", [], "")
        lp = torch.ops.onednn.qlinear_prepack(torch.ones(2, 2, dtype=torch.int8), None)
        z = torch.ops.onednn.qlinear_pointwise(torch.ones(1, 2, dtype=torch.uint8), 1.0, 0, lp, ws, zp,
                                               None, 1.0, 0, torch.float32, "none", [], "")
        return bool(float(y.sum()) == 4.0 and float(z.sum()) == 4.0)
    except Exception:  # missing op (non-x86 build) or unsupported CPU
        return False


def _as_uint8(q: torch.Tensor) -> torch.Tensor:
    """The bytes of a quint8 tensor as a plain uint8 tensor, no copy (int_repr copies: 11 % of
    the T 4-bit int8 time in the profile, docs/int8.md). Same shape, strides and storage."""
    return torch.empty(0, dtype=torch.uint8).set_(q.untyped_storage(), q.storage_offset(), q.shape, q.stride())


def quantize_codes(x: torch.Tensor, scale: float, zero_point: int, code_max: int) -> torch.Tensor:
    """uint8 codes `clamp(round(x / scale) + zero_point, 0, code_max)`, memory format kept."""
    x = x.float()
    if 0 <= zero_point <= 255:
        # quantize_per_tensor is torch's one fused float -> uint8 pass; saturation at 255 is
        # harmless (code_max <= 255). Its one-time deprecation notice is about the quint8
        # dtype, which lives only inside this line, so it is silenced (once, not globally).
        if not _QUIET["done"]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                u = _as_uint8(torch.quantize_per_tensor(x, scale, zero_point, torch.quint8))
            _QUIET["done"] = True
        else:
            u = _as_uint8(torch.quantize_per_tensor(x, scale, zero_point, torch.quint8))
        return u.clamp_(max=code_max) if code_max < 255 else u
    return (x / scale).round_().add_(zero_point).clamp_(0, code_max).to(torch.uint8)


def quantize_codes_exact(x: torch.Tensor, scale: float, zr: float, qmin: int, qmax: int) -> torch.Tensor:
    """uint8 `k - qmin` with the fake-quant model's own arithmetic, `k = round(clamp(x / a + zr))`.

    `quantize_codes` lets torch compute round(x * (1/a) + zero point): at values within a float
    rounding of a code boundary that picks the other code, and a low-bit network amplifies each
    such flip (docs/int8.md). Here x / a and + zr are the same float operations as
    `lsq.fake_quant_act`; the integer-valued result then goes through quantize_per_tensor exactly.
    """
    t = torch.div(x.float(), scale)
    if zr:
        t.add_(zr)
    t.round_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = _as_uint8(torch.quantize_per_tensor(t, 1.0, -qmin, torch.quint8))
    return u.clamp_(max=qmax - qmin) if qmax - qmin < 255 else u


def quantize_codes_per_channel_exact(x: torch.Tensor, step: torch.Tensor, zr: torch.Tensor, offset: torch.Tensor,
                                     lo: torch.Tensor, hi: torch.Tensor, axis: int) -> torch.Tensor:
    """uint8 `clamp(round(x_c / step_c + zr_c) + offset_c - zr_c, lo_c, hi_c)`: the fake-quant
    model's float operations (`quantize_codes_exact`), per channel along `axis`."""
    ax = axis % x.ndim
    view = [1] * x.ndim
    view[ax] = -1
    t = torch.div(x.float(), step.float().reshape(view)).add_(zr.float().reshape(view)).round_()
    shift = (offset - zr).round().long()  # integer codes: adding the shift is exact
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = _as_uint8(torch.quantize_per_channel(t, torch.ones_like(step, dtype=torch.double), shift, ax,
                                                 torch.quint8))
    return u.clamp_(min=lo.to(torch.uint8).reshape(view), max=hi.to(torch.uint8).reshape(view))


def quantize_codes_per_channel(x: torch.Tensor, step: torch.Tensor, offset: torch.Tensor, lo: torch.Tensor,
                               hi: torch.Tensor, axis: int, zp: int | None = None) -> torch.Tensor:
    """uint8 `clamp(round(x_c / step_c) + offset_c, lo_c, hi_c)` along `axis`, memory format kept.

    `zp` (one value for all channels, 0..255) takes torch's fused quantize_per_channel pass.
    """
    x = x.float()
    ax = axis % x.ndim
    view = [1] * x.ndim
    view[ax] = -1
    if zp is not None and 0 <= zp <= 255:
        zps = torch.full((step.numel(),), zp, dtype=torch.long)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            u = _as_uint8(torch.quantize_per_channel(x, step, zps, ax, torch.quint8))
    else:
        u = (x / step.float().reshape(view)).round_().add_(offset.float().reshape(view))
        u = u.clamp_(0, 255).to(torch.uint8)
    lo8, hi8 = lo.to(torch.uint8).reshape(view), hi.to(torch.uint8).reshape(view)
    if bool((lo == lo[0]).all()) and bool((hi == hi[0]).all()):
        return u.clamp_(int(lo[0]), int(hi[0]))
    return u.clamp_(min=lo8, max=hi8)


_MID = 128  # zero point of the uint8 codes in fake_quant_via_codes


def codes_fit(zero_point: torch.Tensor, qmin: torch.Tensor | float, qmax: torch.Tensor | float) -> bool:
    """True when codes `clamp(round(x/a), qmin - zr, qmax - zr) + 128` fit 0..255 (b < 8, or zr = 0)."""
    zr = zero_point.double()
    return bool(((qmin - zr + _MID) >= 0).all()) and bool(((qmax - zr + _MID) <= 255).all())


def fake_quant_via_codes(x: torch.Tensor, axis: int, scale: torch.Tensor, lo8: torch.Tensor,
                         hi8: torch.Tensor) -> torch.Tensor:
    """`(clamp(round(x/a + zr), qmin, qmax) - zr) * a` per channel in three passes.

    torch's fused quantize_per_channel (codes round(x/a) + 128, saturating), one clamp of the
    uint8 codes to `qmin - zr + 128 .. qmax - zr + 128` (`lo8`, `hi8`, shaped to broadcast),
    and torch's dequantize `(code - 128) * a`, instead of seven float passes. Equal to the
    float chain up to x/a vs x*(1/a) at exact rounding ties (used for the continuous qkv
    outputs; not for softmax outputs, whose exact ties it rounds differently, docs/int8.md).
    Needs `codes_fit`.
    """
    zps = torch.full((scale.numel(),), _MID, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qt = torch.quantize_per_channel(x, scale, zps, axis % x.ndim, torch.quint8)
    _as_uint8(qt).clamp_(min=lo8, max=hi8)  # the same bytes as qt
    return qt.dequantize()


class FusedFakeQuant(nn.Module):
    """An ActQuantizer frozen for inference: the same float ops, done in place on one buffer.

    Why not torch.fake_quantize_per_channel_affine: on the strided per-head q/k/v tensors it
    measured 5-10x slower than this chain (docs/int8.md), and it rejects zero points outside
    the code range, which LSQ+ allows.
    """

    def __init__(self, act: ActQuantizer):
        super().__init__()
        step, zp, self.qmin, self.qmax = act.quant_params()
        self.ch_axis = act.ch_axis
        self.register_buffer("scale", step.float().reshape(-1))
        self.register_buffer("zero_point", zp.float().reshape(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.ndim
        if self.scale.numel() > 1:
            shape[self.ch_axis] = -1
        a, zr = self.scale.reshape(shape), self.zero_point.reshape(shape)
        # same expression as lsq.fake_quant_act: (round(clamp(x / a + zr)) - zr) * a
        return torch.div(x.float(), a).add_(zr).clamp_(self.qmin, self.qmax).round_().sub_(zr).mul_(a)


class ActQuantizerParams:
    """Per-channel (step, integer zero point, low, high code) of an ActQuantizer, as float vectors."""

    def __init__(self, act: ActQuantizer, n: int):
        if float(act.init_state) == 0:
            raise QSCIError("attention quantizer step is not initialised (calibrate or load weights first)")
        step, zp, qmin, qmax = act.quant_params()
        self.scale = step.float().reshape(-1).expand(n).clone()
        self.zero_point = zp.float().reshape(-1).expand(n).clone()
        self.lo, self.hi = torch.full((n,), float(qmin)), torch.full((n,), float(qmax))
