"""Integer-kernel CPU inference for trained QAT models (per-tensor or per-channel activation steps).

`convert_to_int8(model)` replaces every `QConv3d` / `QLinear` by `Int8Conv3d` / `Int8Linear`:
quantize the input with the learned LSQ+ step and zero point into uint8 codes, run the oneDNN
u8 x s8 -> fp32 kernel (`torch.ops.onednn.qconv3d_pointwise` / `qlinear_pointwise`) with the
per-output-channel weight steps, and get float output. Why these ops and not the
`torch.ao.nn.quantized` modules: those requantize every output to 8 bits (a rounding the fake-quant
model does not have) and need the deprecated quint8 tensor type between layers; the oneDNN ops
take plain uint8/int8 tensors and return fp32, so the result equals the fake-quantized model up
to float summation order. b-bit weights (b <= 8) are int8 integers in [-2^(b-1), 2^(b-1)-1], so
4/3/2-bit models run exactly on the int8 kernels. Timings that drove the choice: docs/int8.md.

Code mapping (LSQ+, spec section 5): code `c = clamp(round(x/a + zr), Qn, Qp)`, value
`(c - zr) * a`. The kernel gets `u = c - Qn` in [0, 2^b - 1] (uint8) and zero point `zr - Qn`.
Per-channel steps (the authors' checkpoints) are folded into the weights (`fold_per_channel`):
the kernel gets the integer codes with step 1 and weights `Wint * a_c * aw_o`, written exactly
(to float precision) as three int8 terms run in one call.
The remaining fake quantizers (TSAB q/k/v/softmax, per head) stay float fake quantizers, done
in place (`FusedFakeQuant`, `Int8TSAB`) with the same arithmetic.

Fused graph (default, `fuse=True`, per-tensor layers on oneDNN): one wrapper per layer leaves
most of the time in the float passes between the kernels (docs/int8.md: the integer convs were a
fifth of the T 4-bit call), so the blocks are replaced too: planar integer attention
(`Int8TSAB.forward_tokens`), residual sums and concatenations in the kernels or on uint8 codes
(`Int8CFormer`, `Int8ResDNet`), the full-resolution stages on codes (`Int8QSCINet`), the
one-channel first conv with its width taps as channels. Same values up to float rounding.
"""

from __future__ import annotations

import copy
import functools
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from qsci.errors import QSCIError
from qsci.models.blocks import TSAB, CFormer, ResDNet
from qsci.models.qsci_net import QSCINet
from qsci.quant.lsq import ActQuantizer, QConv3d, QLinear

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


def _check_layer(layer: nn.Module, name: str) -> None:
    if float(layer.act.init_state) == 0 or float(layer.init_state) == 0:
        raise QSCIError(f"{name}: quantizer steps are not initialised (calibrate or load weights first)")
    if layer.act.bits > 8 or layer.bits > 8:
        raise QSCIError(f"{name}: {max(layer.act.bits, layer.bits)}-bit layers do not fit int8 kernels")


def _act_params(layer: nn.Module, name: str) -> tuple[float, int, int]:
    """(step, kernel zero point, largest code) of a layer's per-tensor input quantizer."""
    act: ActQuantizer = layer.act
    _check_layer(layer, name)
    step, zp, qmin, qmax = act.quant_params()
    if step.numel() != 1 and not (bool((step == step[0]).all()) and bool((zp == zp[0]).all())):
        raise QSCIError(f"{name}: per-channel activation steps need fold_per_channel()")
    return float(step.reshape(-1)[0]), int(zp.reshape(-1)[0]) - qmin, qmax - qmin


def requantize_per_output(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 q, scale (O,)) with w ~ q * scale[o]; scale = max|w_o| / 127 (1 for an all-zero row)."""
    peak = w.abs().reshape(w.shape[0], -1).amax(dim=1)
    scale = torch.where(peak > 0, peak / 127, torch.ones_like(peak))
    shape = [-1] + [1] * (w.ndim - 1)
    q = (w / scale.reshape(shape)).round().clamp(-127, 127)
    return q.to(torch.int8), scale


def split_int8_terms(w: torch.Tensor, terms: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """w (O, ...) float64 as a sum of `terms` int8 tensors with per-row scales.

    Returns (q (terms*O, ...) int8, scale (terms*O,)): w ~ sum_i q_i * scale_i, term i
    re-quantizing what the earlier terms left. Each term shrinks the error ~250x: one term leaves
    up to 1/254 of the row's largest |w|, three terms ~1e-7 of it (float32 precision).
    """
    shape = [-1] + [1] * (w.ndim - 1)
    qs, ss = [], []
    rest = w.double()
    for _ in range(max(1, int(terms))):
        q, s = requantize_per_output(rest)
        qs.append(q)
        ss.append(s)
        rest = rest - q.double() * s.reshape(shape)
    return torch.cat(qs), torch.cat(ss)


def fold_per_channel(layer: nn.Module, name: str = "layer", terms: int = 3) -> dict:
    """Integer-kernel parameters of a layer whose input quantizer has per-channel steps.

    Fake-quant computes `y_o = b_o + sum_c W_oc (k_c - zr_c) a_c` with W_oc = Wint_oc * aw_o and
    input codes `k_c = clamp(round(x_c / a_c) + zr_c, qmin, qmax)`. The per-channel step a_c is
    folded into column c of the weights, `W'_oc = Wint_oc aw_o a_c`, and W' is written as a sum
    of `terms` int8 tensors with per-output-channel scales (`split_int8_terms`), run as one
    kernel call with terms*O output channels whose slices are summed. Three terms reproduce W'
    to float32 precision (the fold is then exact up to float rounding); one term is the plain
    int8 re-quantization, whose ~1e-3 relative weight error flips codes that cascade through a
    low-bit network (measured in docs/int8.md).

    The kernel input is the exact integer `u_c = k_c - zr_c + Z` with one shift Z for all
    channels (kernel input step 1, zero point Z, so zero padding stays an exact 0): route
    "shift". When those codes do not fit 0..255 (8-bit codes with differing zero points), the
    codes are `k_c - qmin`, the kernel zero point is the median of the per-channel ones and the
    small rest goes into the bias, plus an exact correction of border taps for padded convs:
    route "bias".
    """
    _check_layer(layer, name)
    step, zp, qmin, qmax = layer.act.quant_params()
    a, zr = step.double().reshape(-1), zp.double().reshape(-1)
    wq, ws = layer.int_weight()
    shape = [1] * wq.ndim
    shape[1] = -1  # input channels: dim 1 of conv and linear weights
    wf = wq.double() * ws.double().reshape([-1] + [1] * (wq.ndim - 1)) * a.reshape(shape)
    q, s = split_int8_terms(wf, terms)
    z_shift = int(zr.max()) - qmin
    top = qmax - int(zr.min()) + z_shift
    out = {"weight_int": q, "weight_scale": s.float(), "terms": max(1, int(terms)), "step": a,
           "qmin": qmin, "qmax": qmax}
    if top <= 255:
        out.update(route="shift", x_zp=z_shift, offset=torch.full_like(a, z_shift),
                   lo=(qmin - zr + z_shift), hi=(qmax - zr + z_shift))
    else:
        z_c = zr - qmin  # code of a real 0 in channel c (may lie outside 0..255)
        zk = int(min(max(round(float(z_c.median())), 0), 255))
        wdeq = q.double() * s.double().reshape([-1] + [1] * (q.ndim - 1))
        wdeq = wdeq.reshape(out["terms"], -1, *wq.shape[1:]).sum(dim=0)  # (O, C, *k)
        kz = (wdeq * (z_c - zk).reshape(shape)).sum(dim=1, keepdim=True)  # (O, 1, *k)
        out.update(route="bias", x_zp=zk, offset=z_c, lo=torch.zeros_like(zr),
                   hi=torch.full_like(zr, qmax - qmin), zero_kernel=kz)
    return out


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


class _Int8Base(nn.Module):
    """Shared state: integer weights, steps, input quantization parameters, float bias.

    Per-tensor input steps: codes `clamp(round(x/a) + zr, ...) - qmin`, kernel step a. Per-channel
    steps (the authors' files): the steps are folded into the weights (`fold_per_channel`), the
    kernel sees integer codes with step 1.
    """

    cin_axis = 1

    def _setup(self, layer: nn.Module, name: str, kernel: str, terms: int = 3,
               has_padding: bool = False, exact: bool = False) -> None:
        self.bits, self.exact = int(layer.bits), bool(exact)
        self.x_qmin = int(layer.act.qrange()[0])
        bias = None if layer.bias is None else layer.bias.detach().double().clone()
        self.route, self.terms, self.out_channels = "per-tensor", 1, int(layer.weight.shape[0])
        step, zp, _, _ = layer.act.quant_params()
        if step.numel() == 1 or (bool((step == step[0]).all()) and bool((zp == zp[0]).all())):
            self.x_scale, self.x_zp, self.code_max = _act_params(layer, name)
            wq, ws = layer.int_weight()
            wq, ws = wq.to(torch.int8), ws.float()
        else:
            f = fold_per_channel(layer, name, terms)
            self.route, self.terms = f["route"], f["terms"]
            self.x_scale, self.x_zp, self.code_max = 1.0, int(f["x_zp"]), int(f["hi"].max())
            wq, ws = f["weight_int"], f["weight_scale"]
            self.register_buffer("x_step", f["step"].double())
            self.register_buffer("x_offset", f["offset"].double())
            self.register_buffer("x_lo", f["lo"].double())
            self.register_buffer("x_hi", f["hi"].double())
            self.register_buffer("x_zr", zp.double().reshape(-1))
            kz = f.get("zero_kernel")
            if kz is not None:  # zero points' part: constant in the interior (into the bias) ...
                const = kz.reshape(kz.shape[0], -1).sum(dim=1)
                bias = -const if bias is None else bias - const
                if has_padding:  # ... and a border correction where padding drops taps
                    self.register_buffer("zero_kernel", kz.float())
            if self.terms > 1 and bias is not None:  # the bias rides on the first term's outputs
                bias = torch.cat([bias, bias.new_zeros((self.terms - 1) * bias.numel())])
        if bias is not None:
            bias = bias.float()
        self.register_buffer("weight_int", wq)
        self.register_buffer("weight_scale", ws)
        self.register_buffer("bias", bias)
        self.register_buffer("w_zp", torch.zeros(wq.shape[0], dtype=torch.long), persistent=False)
        if kernel == "auto":
            kernel = "onednn" if onednn_available() else "reference"
        if kernel not in ("onednn", "reference"):
            raise ValueError(f"unknown kernel {kernel!r}")
        self.kernel = kernel
        self._packed: torch.Tensor | None = None
        self.fuse = True  # convert_to_int8(fuse=False): the plain per-layer call only

    @property
    def per_channel(self) -> bool:
        return self.route != "per-tensor"

    @property
    def fusable(self) -> bool:
        """One oneDNN call with a per-tensor input step: output requantization and post-ops apply."""
        return self.route == "per-tensor" and self.terms == 1 and self.kernel == "onednn" and not self.exact

    def codes(self, x: torch.Tensor, axis: int | None = None) -> torch.Tensor:
        """uint8 kernel input codes of x (channel axis `axis`, default the layer's input axis)."""
        axis = self.cin_axis if axis is None else axis
        if not self.per_channel:
            if self.exact:
                zr = self.x_zp + self.x_qmin
                return quantize_codes_exact(x, self.x_scale, zr, self.x_qmin, self.x_qmin + self.code_max)
            return quantize_codes(x, self.x_scale, self.x_zp, self.code_max)
        if self.exact:
            return quantize_codes_per_channel_exact(x, self.x_step, self.x_zr, self.x_offset, self.x_lo, self.x_hi, axis)
        return quantize_codes_per_channel(
            x, self.x_step, self.x_offset, self.x_lo, self.x_hi, axis,
            zp=self.x_zp if self.route == "shift" else None)

    def _sum_terms(self, y: torch.Tensor, dim: int) -> torch.Tensor:
        """Add the `terms` output slices of a folded layer (dim = output-channel axis)."""
        if self.terms == 1:
            return y
        o = self.out_channels
        out = y.narrow(dim, 0, o) + y.narrow(dim, o, o)
        for i in range(2, self.terms):
            out.add_(y.narrow(dim, i * o, o))
        return out

    def _border_correction(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Exact zero-point taps at padded borders (route "bias" with padding): conv of ones."""
        if getattr(self, "zero_kernel", None) is None:
            return y
        ones = torch.ones(1, 1, *x.shape[2:])
        full = self.zero_kernel.reshape(self.zero_kernel.shape[0], -1).sum(dim=1).reshape(1, -1, 1, 1, 1)
        inside = F.conv3d(ones, self.zero_kernel, None, self.stride, self.padding, self.dilation)
        return y.add_(full - inside)

    def _dequant_input(self, u: torch.Tensor) -> torch.Tensor:
        return (u.float() - self.x_zp) * self.x_scale

    def _dequant_weight(self) -> torch.Tensor:
        shape = [-1] + [1] * (self.weight_int.ndim - 1)
        return self.weight_int.float() * self.weight_scale.reshape(shape)

    def extra_repr(self) -> str:
        return (f"bits={self.bits}, route={self.route}, terms={self.terms}, x_scale={self.x_scale:.4g}, x_zp={self.x_zp}, "
                f"codes=0..{self.code_max}, kernel={self.kernel}")


class Int8Conv3d(_Int8Base):
    """QConv3d on integer kernels: quantize input -> u8 x s8 conv -> fp32 (channels_last_3d)."""

    def __init__(self, layer: QConv3d, name: str = "conv", kernel: str = "auto", terms: int = 3,
                 exact: bool = False):
        super().__init__()
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise QSCIError(f"{name}: only zero padding given as numbers is supported")
        self.stride, self.padding = list(layer.stride), list(layer.padding)
        self.dilation, self.groups = list(layer.dilation), int(layer.groups)
        if self.groups != 1 and layer.act.alpha.numel() > 1:
            raise QSCIError(f"{name}: grouped convs with per-channel steps are not supported")
        self._setup(layer, name, kernel, terms, has_padding=any(p > 0 for p in self.padding), exact=exact)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, T, H, W) -> (B, Cout, T', H', W')
        u = self.codes(x)
        if self.width_taps:
            return self._forward_width_taps(u)
        if self.kernel == "reference":
            y = F.conv3d(self._dequant_input(u), self._dequant_weight(), self.bias,
                         self.stride, self.padding, self.dilation, self.groups)
        else:
            if self._packed is None:
                self._packed = torch.ops.onednn.qconv_prepack(
                    self.weight_int, self.weight_scale, self.x_scale, self.x_zp, self.stride,
                    self.padding, self.dilation, self.groups, None)
            u = u.contiguous(memory_format=torch.channels_last_3d)
            y = torch.ops.onednn.qconv3d_pointwise(
                u, self.x_scale, self.x_zp, self._packed, self.weight_scale, self.w_zp, self.bias,
                self.stride, self.padding, self.dilation, self.groups, 1.0, 0, torch.float32, "none", [], "")
        return self._border_correction(self._sum_terms(y, 1), x)

    @property
    def width_taps(self) -> bool:
        """A one-channel input (the first conv, 1 -> C, (3, 7, 7)): oneDNN runs Cin = 1 at a fraction
        of its int8 rate, so the kernel's width taps become input channels (`_forward_width_taps`)."""
        return self.fuse and self.fusable and self.weight_int.shape[1] == 1 and self.weight_int.shape[-1] > 1 \
            and self.stride[2] == 1 and self.dilation[2] == 1 and self.groups == 1 \
            and 0 <= self.x_zp <= 255  # the padding columns hold the zero-point code

    def _forward_width_taps(self, u: torch.Tensor) -> torch.Tensor:
        """The conv with its kw width taps as input channels (padded to a multiple of 4): channel j
        at column x holds the code of column x + j - pad (the zero-point code outside, an exact 0),
        and the kernel becomes (kt, kh, 1) over kw channels. Exact (the same integer sums); T 4-bit
        first conv at 256x256x8: 14.4 ms -> 5.3 ms plus 1.5 ms to lay out the channels."""
        b, _, t, h, w = u.shape
        o, kw, pw = self.weight_int.shape[0], self.weight_int.shape[-1], self.padding[2]
        k = (kw + 3) // 4 * 4
        pad = [self.padding[0], self.padding[1], 0]
        if getattr(self, "_packed_taps", None) is None:
            wt = torch.zeros(o, k, *self.weight_int.shape[2:4], 1, dtype=torch.int8)
            wt[:, :kw, :, :, 0] = self.weight_int[:, 0].permute(0, 3, 1, 2)
            self._packed_taps = torch.ops.onednn.qconv_prepack(
                wt, self.weight_scale, self.x_scale, self.x_zp, self.stride, pad, self.dilation, 1, None)
        w_out = w + 2 * pw - kw + 1
        src = u.reshape(b, t, h, w)  # one channel: every memory format is this
        taps = torch.full((b, t, h, w_out, k), self.x_zp, dtype=torch.uint8)
        for j in range(kw):
            lo, hi = max(0, pw - j), min(w_out, w + pw - j)
            if hi > lo:
                taps[..., lo:hi, j] = src[..., lo + j - pw:hi + j - pw]
        return torch.ops.onednn.qconv3d_pointwise(
            taps.permute(0, 4, 1, 2, 3), self.x_scale, self.x_zp, self._packed_taps, self.weight_scale, self.w_zp,
            self.bias, self.stride, pad, self.dilation, 1, 1.0, 0, torch.float32, "none", [], "")

    @property
    def pointwise(self) -> bool:
        """A fusable 1x1x1 conv with unit stride and no padding: a matmul on channels-last rows."""
        return self.fuse and self.fusable and self.weight_int.shape[2:].numel() == 1 \
            and self.stride == [1, 1, 1] and self.padding == [0, 0, 0] and self.groups == 1

    @property
    def framewise(self) -> bool:
        """A (1, k, k) kernel with no temporal stride or padding: a 2-D conv over the B*T frames."""
        return self.weight_int.shape[2] == 1 and self.stride[0] == 1 and self.padding[0] == 0

    def forward_frames(self, u: torch.Tensor, accum: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 codes (B, Cin, T, H, W) -> fp32 (B, Cout, T, H', W'), channels-last, as ONE 2-D
        conv over the frames (a view of channels-last memory: no copy); `accum` (the output's
        shape, channels-last) is added by the kernel (oneDNN sum post-op)."""
        b, c, t, h, w = u.shape
        if getattr(self, "_packed2d", None) is None:
            self._packed2d = torch.ops.onednn.qconv_prepack(
                self.weight_int[:, :, 0].contiguous(), self.weight_scale, self.x_scale, self.x_zp, self.stride[1:],
                self.padding[1:], self.dilation[1:], self.groups, None)
        frames = u.contiguous(memory_format=torch.channels_last_3d).transpose(1, 2).reshape(b * t, c, h, w)
        args = (self.bias, self.stride[1:], self.padding[1:], self.dilation[1:], self.groups, 1.0, 0, torch.float32)
        if accum is None:
            y = torch.ops.onednn.qconv2d_pointwise(frames, self.x_scale, self.x_zp, self._packed2d, self.weight_scale,
                                                   self.w_zp, *args, "none", [], "")
        else:
            acc = accum.transpose(1, 2).reshape(b * t, *accum.shape[1:2], *accum.shape[3:])
            y = torch.ops.onednn.qconv2d_pointwise.binary(
                frames, self.x_scale, self.x_zp, self._packed2d, self.weight_scale, self.w_zp, acc, *args,
                1.0, 0, "sum", 1.0, "none", [], "")
        return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)

    def forward_codes(self, u: torch.Tensor) -> torch.Tensor:
        """uint8 codes (B, Cin, T, H, W) -> fp32 output, channels-last (a fusable layer)."""
        if self._packed is None:
            self._packed = torch.ops.onednn.qconv_prepack(
                self.weight_int, self.weight_scale, self.x_scale, self.x_zp, self.stride,
                self.padding, self.dilation, self.groups, None)
        return torch.ops.onednn.qconv3d_pointwise(
            u.contiguous(memory_format=torch.channels_last_3d), self.x_scale, self.x_zp, self._packed,
            self.weight_scale, self.w_zp, self.bias, self.stride, self.padding, self.dilation, self.groups,
            1.0, 0, torch.float32, "none", [], "")

    def forward_rows_codes(self, u: torch.Tensor, nxt: "_Int8Base") -> torch.Tensor:
        """1x1x1 conv on (N, Cin) code rows whose output feeds only `nxt`'s quantizer: the kernel
        writes `nxt`'s uint8 codes (output scale and zero point), no fp32 output at all."""
        out = self.forward_rows_prepacked()
        codes = torch.ops.onednn.qlinear_pointwise(
            u.contiguous(), self.x_scale, self.x_zp, out, self.weight_scale, self.w_zp, self.bias,
            nxt.x_scale, nxt.x_zp, None, "none", [], "")
        return codes.clamp_(max=nxt.code_max) if nxt.code_max < 255 else codes

    def forward_rows_prepacked(self) -> torch.Tensor:
        if getattr(self, "_packed_linear", None) is None:
            self._packed_linear = torch.ops.onednn.qlinear_prepack(
                self.weight_int.reshape(self.weight_int.shape[0], -1), None)
        return self._packed_linear

    def forward_rows(self, parts: list[torch.Tensor], add: torch.Tensor | None = None,
                     accum: torch.Tensor | None = None, leaky: float | None = None) -> torch.Tensor:
        """1x1x1 conv on (N, C_j) uint8 code rows that are consecutive slices of its input channels:
        the codes are concatenated (one quantizer per layer, so the codes of a concatenation are the
        concatenation of the codes; 4x fewer bytes than the float torch.cat of the model), then one
        u8 x s8 matmul. `add` (N, Cout) is added in place to the new output; `accum` receives the
        output by the kernel's sum post-op. (One kernel per part, summed by post-ops, measured
        10.2 ms against 7.0 for this on the 64-channel last conv.) `leaky` (negative slope; not
        with add/accum) applies LeakyReLU as the kernel's post-op: one pass over the output fewer."""
        if leaky is not None and (add is not None or accum is not None):
            raise ValueError("forward_rows: leaky applies to the conv output alone, not with add/accum")
        u = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if accum is not None:
            return torch.ops.onednn.qlinear_pointwise.binary(
                u.contiguous(), self.x_scale, self.x_zp, self.forward_rows_prepacked(), self.weight_scale,
                self.w_zp, accum, self.bias, 1.0, 0, torch.float32, 1.0, 0, "sum", 1.0, "none", [], "")
        post, args = ("none", []) if leaky is None else ("leaky_relu", [leaky])
        y = torch.ops.onednn.qlinear_pointwise(
            u.contiguous(), self.x_scale, self.x_zp, self.forward_rows_prepacked(), self.weight_scale, self.w_zp,
            self.bias, 1.0, 0, torch.float32, post, args, "")
        return y if add is None else y.add_(add)


def _rows(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) channels-last -> (B*T*H*W, C) view (copies only a non-channels-last x)."""
    return x.permute(0, 2, 3, 4, 1).reshape(-1, x.shape[1])


def _cl(rows: torch.Tensor, like: tuple[int, ...]) -> torch.Tensor:
    """(B*T*H*W, C) rows -> (B, C, T, H, W) channels-last view."""
    b, _, t, h, w = like
    return rows.reshape(b, t, h, w, -1).permute(0, 4, 1, 2, 3)


class Int8CFormer(nn.Module):
    """A converted CFormer whose residual sums ride in the kernels (oneDNN add/sum post-ops).

    `s = scb(x) + tsab(x) + x; out = ffn(s) + s`: the attention's proj kernel writes tsab(x) + x,
    the SCB convs run as 2-D convs over frames and the second is added in place, the FFN's
    1x1x1 conv adds itself into s. Two fp32 adds fewer and no new buffer for the third; same
    values up to the order of the float sums. Falls back to the plain formula when a layer cannot
    fuse (per-channel steps, `exact=True`, the reference kernel).
    """

    def __init__(self, cformer: nn.Module):
        super().__init__()
        self.scb, self.tsab, self.ffn = cformer.scb, cformer.tsab, cformer.ffn
        convs = [self.scb[0], self.scb[2], self.ffn[0], self.ffn[2]]
        self.fused = all(isinstance(c, Int8Conv3d) and c.fusable for c in convs) \
            and isinstance(self.tsab, Int8TSAB) and self.tsab.planar \
            and self.scb[0].framewise and self.scb[2].framewise and self.ffn[2].weight_int.shape[2:].numel() == 1 \
            and all(isinstance(m, nn.LeakyReLU) for m in (self.scb[1], self.ffn[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, g, T, H, W)
        if not self.fused:
            s = self.scb(x) + self.tsab(x) + x
            return self.ffn(s) + s
        x = x.contiguous(memory_format=torch.channels_last_3d)
        conv1, conv2 = self.scb[0], self.scb[2]
        y = F.leaky_relu_(conv1.forward_frames(conv1.codes(x)), self.scb[1].negative_slope)
        u = conv2.codes(y)
        s = _cl(self.tsab.forward_tokens(x, add=_rows(x)), x.shape)  # tsab(x) + x, a new buffer
        s.add_(conv2.forward_frames(u))  # + scb(x); in place (conv2d's sum post-op copies the accumulator)
        f1, f2 = self.ffn[0], self.ffn[2]
        y = F.leaky_relu_(f1(s), self.ffn[1].negative_slope)
        return _cl(f2.forward_rows([_rows(f2.codes(y))], accum=_rows(s)), s.shape)


class Int8ResDNet(nn.Module):
    """A converted ResDNet whose two channel concatenations move uint8 codes, not fp32: the dense
    and last 1x1x1 convs quantize each part and concatenate the codes (`forward_rows`)."""

    def __init__(self, resdnet: nn.Module):
        super().__init__()
        self.group_num = resdnet.group_num
        self.cformer_list, self.dense_conv, self.last_conv = resdnet.cformer_list, resdnet.dense_conv, resdnet.last_conv
        convs = [d[0] for d in self.dense_conv] + [self.last_conv]
        self.fused = all(isinstance(c, Int8Conv3d) and c.pointwise for c in convs) \
            and all(isinstance(d[1], nn.LeakyReLU) for d in self.dense_conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, dim, T, h, w)
        groups = x.chunk(self.group_num, dim=1)
        outs = [self.cformer_list[0](groups[0])]
        if not self.fused:
            for i in range(1, self.group_num):
                z = self.dense_conv[i - 1](torch.cat([*outs, groups[i]], dim=1))
                outs.append(self.cformer_list[i](z))
            return self.last_conv(torch.cat(outs, dim=1)) + x
        shape = outs[0].shape
        for i in range(1, self.group_num):
            conv, act = self.dense_conv[i - 1]
            parts = [_rows(conv.codes(o)) for o in [*outs, groups[i]]]
            z = conv.forward_rows(parts, leaky=act.negative_slope)
            outs.append(self.cformer_list[i](_cl(z, shape)))
        conv = self.last_conv
        x = x.contiguous(memory_format=torch.channels_last_3d)
        out = conv.forward_rows([_rows(conv.codes(o)) for o in outs], add=_rows(x))
        return _cl(out, x.shape)


def _unshuffle_rows(u: torch.Tensor) -> torch.Tensor:
    """pixel_unshuffle_frames(u, 2) of channels-last uint8 codes, as (B*T*H/2*W/2, 4C) rows: ONE
    byte copy (the float model unshuffles fp32, 4x the bytes, then quantizes)."""
    b, c, t, h, w = u.shape
    rows = u.permute(0, 2, 3, 4, 1).reshape(b, t, h // 2, 2, w // 2, 2, c)
    return rows.permute(0, 1, 2, 4, 6, 3, 5).reshape(-1, 4 * c)


def _shuffle_codes(rows: torch.Tensor, like: tuple[int, ...]) -> torch.Tensor:
    """pixel_shuffle_frames(., 2) of (B*T*h*w, 4C) uint8 code rows -> (B, C, T, 2h, 2w) channels-last."""
    b, _, t, h, w = like
    c = rows.shape[1] // 4
    full = rows.reshape(b, t, h, w, c, 2, 2).permute(0, 1, 2, 5, 3, 6, 4).reshape(b, t, 2 * h, 2 * w, c)
    return full.permute(0, 4, 1, 2, 3)


class Int8QSCINet(QSCINet):
    """A converted QSCINet (b < 8 bits, 8-bit side branches) with its full-resolution stages on codes.

    Same graph and values as QSCINet up to float rounding; what changes is where the bytes go:
    pixel (un)shuffles move uint8 codes instead of fp32 (4x fewer bytes); up_conv writes the two
    decoder quantizers' codes itself (oneDNN output scale and zero point), the decoder's last 1x1x1
    branch adds itself into the last conv's output, and the branch sums are in place.
    `convert_to_int8` sets this class on its own converted copy when every layer can fuse.
    """

    @staticmethod
    def fusable(model: nn.Module) -> bool:
        convs = [model.fem_conv1_1[0], model.fem_conv1_2[0], model.fem_conv2_1[0], model.fem_conv2_2[0],
                 model.fem_conv3_1[0], model.fem_conv3_2[0], model.up_conv, model.vrm_conv1_1[0],
                 model.vrm_conv1_2[0], model.vrm_conv2_1[0], model.vrm_conv2_2[0], model.vrm_conv3_1,
                 model.vrm_conv3_2]
        ones = (model.fem_conv3_2[0], model.up_conv, model.vrm_conv1_2[0], model.vrm_conv3_2)
        return all(isinstance(c, Int8Conv3d) and c.fusable for c in convs) \
            and all(c.weight_int.shape[2:].numel() == 1 for c in ones)

    def _branch(self, seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        """LeakyReLU(conv(x)); a 1x1x1 conv runs on code rows with LeakyReLU as its post-op."""
        conv, slope = seq[0], seq[1].negative_slope
        if conv.pointwise:
            b, _, t, h, w = x.shape
            return _cl(conv.forward_rows([_rows(conv.codes(x))], leaky=slope), (b, -1, t, h, w))
        return F.leaky_relu_(conv(x), slope)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, T, H, W) -> (B, 4C, T, H/2, W/2)
        x1 = self._branch(self.fem_conv1_1, x).add_(self._branch(self.fem_conv1_2, x))
        x2 = self._branch(self.fem_conv2_1, x1).add_(self._branch(self.fem_conv2_2, x1))
        out = self._branch(self.fem_conv3_1, x2)
        conv, act = self.fem_conv3_2
        side = conv.forward_rows([_unshuffle_rows(conv.codes(x2))], leaky=act.negative_slope)
        return out.add_(_cl(side, out.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 1 or x.shape[-1] % 2 or x.shape[-2] % 2:
            return super().forward(x)  # the float model's input checks say what is wrong
        out = self.encode(x)
        for block in self.resdnet_list:
            out = block(out)
        up = _rows(self.up_conv.codes(out))
        v11, v12 = self.vrm_conv1_1[0], self.vrm_conv1_2[0]
        full = (out.shape[0], 1, out.shape[2], 2 * out.shape[3], 2 * out.shape[4])
        u11 = _shuffle_codes(self.up_conv.forward_rows_codes(up, v11), out.shape)
        u12 = _shuffle_codes(self.up_conv.forward_rows_codes(up, v12), out.shape)
        x1 = F.leaky_relu_(v11.forward_codes(u11), self.vrm_conv1_1[1].negative_slope)
        x1.add_(_cl(v12.forward_rows([_rows(u12)], leaky=self.vrm_conv1_2[1].negative_slope), full))
        x2 = self._branch(self.vrm_conv2_1, x1).add_(self._branch(self.vrm_conv2_2, x1))
        y = self.vrm_conv3_1(x2)
        last = self.vrm_conv3_2
        y = _cl(last.forward_rows([_rows(last.codes(x2))], accum=_rows(y)), full).squeeze(1)  # (B, T, H, W)
        return x.squeeze(1) + y if self.config.residual else y


class Int8Linear(_Int8Base):
    """QLinear on integer kernels: quantize input -> u8 x s8 matmul -> fp32."""

    cin_axis = -1

    def __init__(self, layer: QLinear, name: str = "linear", kernel: str = "auto", terms: int = 3,
                 exact: bool = False):
        super().__init__()
        self._setup(layer, name, kernel, terms, exact=exact)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        lead = x.shape[:-1]
        y = self.forward_codes(self.codes(x.reshape(-1, x.shape[-1])))
        return y.reshape(*lead, y.shape[-1])

    def packed(self) -> torch.Tensor:
        if self._packed is None:
            self._packed = torch.ops.onednn.qlinear_prepack(self.weight_int, None)
        return self._packed

    def forward_codes(self, u: torch.Tensor) -> torch.Tensor:  # (M, in) uint8 -> (M, out) fp32
        if self.kernel == "reference":
            y = F.linear(self._dequant_input(u), self._dequant_weight(), self.bias)
        else:
            if self._packed is None:
                self._packed = torch.ops.onednn.qlinear_prepack(self.weight_int, None)
            y = torch.ops.onednn.qlinear_pointwise(
                u.contiguous(), self.x_scale, self.x_zp, self._packed, self.weight_scale, self.w_zp,
                self.bias, 1.0, 0, torch.float32, "none", [], "")
        return self._sum_terms(y, -1)


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


class Int8TSAB(nn.Module):
    """Temporal self-attention of a converted Q-SCI block, with fewer passes over memory.

    Same arithmetic as qsci.models.blocks.TSAB (quantized). Default (`planar`): integer codes
    laid out with pixels innermost (`forward_tokens`, 4x faster). Otherwise (per-channel steps,
    `exact=True`, reference kernel, `fuse=False`): token-major, the per-head q/k shifts and the
    q/k/v fake quantizers applied per column of the 2-D qkv output in place (one buffer instead
    of three strided copies), softmax over the 8 frames spelled out in place (torch's softmax
    over a last axis of 8 was 5x slower here).
    """

    def __init__(self, tsab: nn.Module, exact: bool = False):
        super().__init__()
        self.heads, self.inner, self.scale = tsab.heads, tsab.inner, tsab.scale
        self.qkv, self.proj = tsab.qkv, tsab.proj
        d = self.inner // self.heads
        acts = [ActQuantizerParams(getattr(tsab, n), self.heads) for n in ("q_act", "k_act", "v_act")]
        shift = torch.cat([tsab.moveq.bias.detach().reshape(-1), tsab.movek.bias.detach().reshape(-1),
                           torch.zeros(self.heads)])  # per (part, head)
        cols = lambda v: v.reshape(3 * self.heads, 1).expand(-1, d).reshape(-1)  # noqa: E731
        self.register_buffer("shift", cols(shift))
        self.register_buffer("a", cols(torch.cat([p.scale for p in acts])))
        self.register_buffer("zr", cols(torch.cat([p.zero_point for p in acts])))
        self.register_buffer("lo", cols(torch.cat([p.lo for p in acts])))
        self.register_buffer("hi", cols(torch.cat([p.hi for p in acts])))
        self.attn_act = FusedFakeQuant(tsab.attn_act)
        self.attn_act.ch_axis = -3  # heads: (N, heads, T, T) here, (B, HW, heads, T, T) in _forward_int
        # integer path: q/k shifts ride in the qkv kernel's bias, q/k/v quantize via uint8 codes
        self.via_codes = not exact and codes_fit(self.zr, self.lo, self.hi)
        self.register_buffer("lo8", (self.lo - self.zr + _MID).clamp(0, 255).to(torch.uint8).reshape(1, -1))
        self.register_buffer("hi8", (self.hi - self.zr + _MID).clamp(0, 255).to(torch.uint8).reshape(1, -1))
        self._shift_in_bias = False
        self._planar: dict | None = None
        self.fuse = True  # convert_to_int8(fuse=False) keeps the earlier token-major path

    @property
    def planar(self) -> bool:
        """True when the planar integer path runs (per-tensor linears on oneDNN, default rounding)."""
        return self.fuse and isinstance(self.qkv, Int8Linear) and isinstance(self.proj, Int8Linear) \
            and self.qkv.fusable \
            and self.proj.fusable and bool(((self.hi - self.lo) == (self.hi - self.lo)[0]).all()) \
            and float(self.hi[0] - self.lo[0]) <= 255 and not self._shift_in_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, g, T, H, W)
        if self.planar:
            b, g, t, h, w = x.shape
            return self.forward_tokens(x).reshape(b, t, h, w, g).permute(0, 4, 1, 2, 3)
        if isinstance(self.qkv, Int8Linear) and isinstance(self.proj, Int8Linear):
            return self._forward_int(x)
        b, g, t, h, w = x.shape
        n, d = b * h * w, self.inner // self.heads
        qkv = self.qkv(x.permute(0, 3, 4, 2, 1).reshape(n, t, g)).reshape(n * t, 3 * self.inner)
        self._quantize_qkv(qkv)
        qkv = qkv.reshape(n, t, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        out = self._attend(qkv[0], qkv[1], qkv[2])  # (N, heads, T, d)
        out = self.proj(out.transpose(1, 2).reshape(n, t, self.inner))  # (N, T, g)
        return out.reshape(b, h, w, t, g).permute(0, 4, 3, 1, 2)

    def _quantize_qkv(self, qkv: torch.Tensor) -> None:
        """q + shift, then lsq.fake_quant_act per head, in place: (round(clamp(v / a + zr)) - zr) * a."""
        qkv.add_(self.shift).div_(self.a).add_(self.zr).clamp_(self.lo, self.hi).round_()
        qkv.sub_(self.zr).mul_(self.a)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        attn = torch.matmul(q, k.transpose(-2, -1)).mul_(self.scale)  # (..., T, T)
        attn = attn.sub_(attn.amax(dim=-1, keepdim=True)).exp_()
        attn = self.attn_act(attn.div_(attn.sum(dim=-1, keepdim=True)))
        return torch.matmul(attn, v)  # (..., T, d)

    def _forward_int(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens in frame-major order (b, t, h, w): the channels_last_3d memory order, so the
        uint8 input codes are a view and the output comes back channels-last without a copy."""
        b, g, t, h, w = x.shape
        hw, d = h * w, self.inner // self.heads
        u = self.qkv.codes(x, axis=1).permute(0, 2, 3, 4, 1).reshape(b * t * hw, g)
        if self.via_codes:
            if not self._shift_in_bias:  # q/k shifts become the qkv kernel's bias (first term)
                extra = self.shift.new_zeros((self.qkv.terms - 1) * self.shift.numel())
                self.qkv.bias = torch.cat([self.shift, extra]) + (0 if self.qkv.bias is None else self.qkv.bias)
                self.qkv._packed, self._shift_in_bias = None, True
            qkv = self.qkv.forward_codes(u)  # (B*T*H*W, 3*inner) = linear + shift
            qkv = fake_quant_via_codes(qkv, 1, self.a.double(), self.lo8, self.hi8)
        else:
            qkv = self.qkv.forward_codes(u)  # (B*T*H*W, 3*inner), fresh buffer
            self._quantize_qkv(qkv)
        qkv = qkv.reshape(b, t, hw, 3, self.heads, d).permute(3, 0, 2, 4, 1, 5)  # (3, B, HW, heads, T, d)
        out = self._attend(qkv[0], qkv[1], qkv[2])  # (B, HW, heads, T, d), contiguous
        if self.proj.per_channel:  # channels are (head, d): token order first, then codes
            u = self.proj.codes(out.permute(0, 3, 1, 2, 4).reshape(b * t * hw, self.inner))
        else:  # codes first: the token-order copy moves uint8, not fp32
            u = self.proj.codes(out).permute(0, 3, 1, 2, 4).reshape(b * t * hw, self.inner)
        out = self.proj.forward_codes(u)  # (B*T*H*W, g)
        return out.reshape(b, t, h, w, g).permute(0, 4, 1, 2, 3)  # channels_last_3d view


    def _planar_params(self) -> dict:
        """Constants of the planar path, made once: the q/k/v steps folded into the qkv kernel's
        weight scales and bias (it writes the uint8 codes `clamp(round((y + shift)/a + zr)) - qmin`
        itself), the per-head softmax and output factors."""
        qkv, proj, d = self.qkv, self.proj, self.inner // self.heads
        a, zr, lo = self.a.double(), self.zr.double(), self.lo.double()
        base = self.shift.double() + (0 if qkv.bias is None else qkv.bias.double())
        heads = slice(0, self.inner, d)
        aq, ak, av = a[heads], a[self.inner:][heads], a[2 * self.inner:][heads]
        pa, pz = self.attn_act.scale.double(), self.attn_act.zero_point.double()
        return {
            # -lo is even (0 or -2^(b-1)), so round(v + zr - lo) = round(v + zr) - lo, ties included
            "packed": torch.ops.onednn.qlinear_prepack(qkv.weight_int, None),
            "w_scale": (qkv.weight_scale.double() / a).float(), "bias": (base / a + zr - lo).float(),
            "w_zp": torch.zeros_like(qkv.w_zp), "span": int(self.hi[0] - self.lo[0]),
            "center": (zr - lo).float().reshape(-1, 1),  # code byte - center = integer code - zr
            "logit": (self.scale * aq * ak).float().reshape(-1, 1, 1, 1),
            "pa": pa.float().reshape(-1, 1, 1, 1), "pz": pz.float().reshape(-1, 1, 1, 1),
            "out": (pa * av / proj.x_scale).float().reshape(-1, 1, 1, 1),
            # largest |code - zr| of q, k, v and of the attention codes: int16 arithmetic when exact
            "qkv_max": [float(torch.maximum((self.hi - self.zr)[part], (self.zr - self.lo)[part]).abs().max())
                        for part in (slice(0, self.inner), slice(self.inner, 2 * self.inner),
                                     slice(2 * self.inner, None))],
            "attn_max": float(torch.maximum((self.attn_act.qmax - pz).abs(), (self.attn_act.qmin - pz).abs()).max()),
        }

    def forward_tokens(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """(B, g, T, H, W) -> (B*T*H*W, g) fp32 rows in frame-major token order (+ `add`, same shape).

        Planar attention: the qkv kernel writes uint8 codes, which are turned into integer-valued
        floats laid out (part, head, d, T, pixels), so every attention step is an elementwise op
        over 16384 contiguous pixels (torch's bmm over 65536 8x4 matrices was 4x slower).
        q.k is an exact integer; softmax, the attention quantizer and attn @ v follow the float
        model's formulas; the proj kernel adds the residual (`add`) as a oneDNN post-op.
        """
        if self._planar is None:
            self._planar = self._planar_params()
        c = self._planar
        b, g, t, h, w = x.shape
        hw, heads, d = h * w, self.heads, self.inner // self.heads
        u = self.qkv.codes(x, axis=1).permute(0, 2, 3, 4, 1).reshape(b * t * hw, g)
        codes = torch.ops.onednn.qlinear_pointwise(
            u, self.qkv.x_scale, self.qkv.x_zp, c["packed"], c["w_scale"], c["w_zp"], c["bias"],
            1.0, 0, None, "none", [], "")  # (B*T*H*W, 3*inner) uint8, saturated below at 0
        if c["span"] < 255:
            codes.clamp_(max=c["span"])
        cols = 3 * self.inner
        mq, mk, mv = c["qkv_max"]
        # q.k and attn @ v are sums of integer products: int16 halves the bytes where no sum can overflow
        small = max(d * mq * mk, t * c["attn_max"] * mv) < 2**15
        dtype = torch.int16 if small else torch.float32
        center = c["center"].to(dtype)
        blocks = []
        for i in range(b):
            part = codes[i * t * hw:(i + 1) * t * hw]
            planar = torch.empty(cols, t * hw, dtype=dtype)
            if cols % 4 == 0:  # transpose 4-byte words (2.5x faster than bytes), then split them
                words = part.view(torch.int32).t().contiguous().view(torch.uint8).reshape(cols // 4, t * hw, 4)
                torch.sub(words.permute(0, 2, 1), center.reshape(cols // 4, 4, 1),
                          out=planar.reshape(cols // 4, 4, t * hw))
            else:
                torch.sub(part.t().contiguous(), center, out=planar)
            qkv = planar.reshape(3, heads, d, t, hw)
            blocks.append(self._attend_planar(qkv[0], qkv[1], qkv[2], c))
        uo = blocks[0] if b == 1 else torch.cat(blocks)
        if add is None:
            return self.proj.forward_codes(uo)
        return torch.ops.onednn.qlinear_pointwise.binary(
            uo, self.proj.x_scale, self.proj.x_zp, self.proj.packed(), self.proj.weight_scale, self.proj.w_zp,
            add, self.proj.bias, 1.0, 0, torch.float32, 1.0, 0, "add", 1.0, "none", [], "")

    def _attend_planar(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, c: dict) -> torch.Tensor:
        """q, k, v (heads, d, T, P) integer codes - zr -> proj input codes (T*P, inner) uint8."""
        heads, d, t, p = q.shape
        logits = q[:, 0, :, None, :] * k[:, 0, None, :, :]  # (heads, T, S, P)
        for i in range(1, d):
            logits.addcmul_(q[:, i, :, None, :], k[:, i, None, :, :])
        attn = torch.softmax(torch.mul(logits, c["logit"]), dim=2)
        # attention quantizer (lsq.fake_quant_act), keeping code - zr
        aq = self.attn_act
        zps = [int(z) - aq.qmin for z in c["pz"].reshape(-1).tolist()]
        if all(0 <= z <= 255 for z in zps):
            # per head: torch's one-pass quantize (round(p * (1/a)) + zp), clamp, minus zp: 2 ms
            # instead of 4 for the float chain, and the same codes (0 of 33.5M differed on the
            # trained T 4-bit models, docs/int8.md)
            codes = torch.empty(attn.shape, dtype=v.dtype)
            for h, zp in enumerate(zps):
                u = quantize_codes(attn[h], float(c["pa"].reshape(-1)[h]), zp, aq.qmax - aq.qmin)
                torch.sub(u, zp, out=codes[h])
            attn = codes
        else:
            attn.div_(c["pa"]).add_(c["pz"]).clamp_(aq.qmin, aq.qmax).round_().sub_(c["pz"])
            attn = attn.to(v.dtype)
        frames = torch.empty(t, heads, d, p, dtype=v.dtype)  # written as (heads, T, d, P) ...
        out = frames.permute(1, 0, 2, 3)
        torch.mul(attn[:, :, 0, None, :], v[:, None, :, 0, :], out=out)
        for s in range(1, t):
            out.addcmul_(attn[:, :, s, None, :], v[:, None, :, s, :])
        factor = c["out"].reshape(1, heads, 1, 1)
        scaled = frames.mul_(factor) if frames.is_floating_point() else torch.mul(frames, factor)
        uo = quantize_codes(scaled, 1.0, self.proj.x_zp, self.proj.code_max)
        # ... so that token order is one (inner, P) -> (P, inner) transpose per frame
        return uo.reshape(t, heads * d, p).transpose(1, 2).reshape(t * p, heads * d)


class ActQuantizerParams:
    """Per-channel (step, integer zero point, low, high code) of an ActQuantizer, as float vectors."""

    def __init__(self, act: ActQuantizer, n: int):
        if float(act.init_state) == 0:
            raise QSCIError("attention quantizer step is not initialised (calibrate or load weights first)")
        step, zp, qmin, qmax = act.quant_params()
        self.scale = step.float().reshape(-1).expand(n).clone()
        self.zero_point = zp.float().reshape(-1).expand(n).clone()
        self.lo, self.hi = torch.full((n,), float(qmin)), torch.full((n,), float(qmax))


def convert_to_int8(model: nn.Module, kernel: str = "auto", inplace: bool = False, terms: int = 3,
                    exact: bool = False, fuse: bool = True) -> nn.Module:
    """Integer-kernel copy of a calibrated QAT model, in eval mode.

    Every QConv3d / QLinear becomes Int8Conv3d / Int8Linear, every other ActQuantizer a
    FusedFakeQuant; everything else (LeakyReLU, attention, pixel shuffle) stays float. Layers
    with per-channel activation steps (the authors' checkpoints) have the steps folded into
    their weights as `terms` int8 terms (`fold_per_channel`; 3 = exact to float precision, 1 =
    plain re-quantization, faster and approximate). The top-level module and its forward stay
    (a residual or any other wrapper logic keeps working). Raises QSCIError for uninitialised
    steps or > 8 bits. `kernel="reference"` runs the same integer arithmetic with float convs.
    `exact=True` quantizes layer inputs with the fake-quant model's own float operations (x / a,
    + zr, round); `exact=False` uses torch's one-pass quantize (x * (1/a)), faster, but codes
    at float-rounding distance from a boundary can differ and low-bit networks amplify that
    (docs/int8.md: the reconstruction PSNR stays within 0.1 dB, the outputs differ visibly).
    `fuse=True` (default; only where every layer involved is per-tensor on oneDNN with `exact=False`)
    runs the fused graph: planar integer attention (`Int8TSAB.forward_tokens`), residual sums and
    concatenations in the kernels (`Int8CFormer`, `Int8ResDNet`), the full-resolution stages on
    uint8 codes (`Int8QSCINet`). `fuse=False` keeps one wrapper per layer (the earlier path, for
    comparisons). Both compute the fake-quant model's values up to float rounding.
    """
    if isinstance(model, (QConv3d, QLinear)):
        raise QSCIError("convert_to_int8 needs a model that contains quantized layers, not a layer")
    if not inplace:
        model = copy.deepcopy(model)
    _replace_children(model.eval(), "", kernel, terms, exact)
    if not fuse:
        for m in model.modules():
            if isinstance(m, (Int8CFormer, Int8ResDNet)):
                m.fused = False
            elif isinstance(m, (Int8TSAB, Int8Conv3d)):
                m.fuse = False
    elif type(model) is QSCINet and Int8QSCINet.fusable(model):
        model.__class__ = Int8QSCINet  # same modules and state; the stages on codes (its docstring)
    if not int8_layers(model):
        raise QSCIError("model has no QConv3d / QLinear layers: int8 needs a quantized (Q-SCI) model")
    return model


def _replace_children(parent: nn.Module, prefix: str, kernel: str, terms: int, exact: bool = False) -> None:
    for child_name, child in list(parent.named_children()):
        full = prefix + child_name
        if isinstance(child, QConv3d):
            setattr(parent, child_name, Int8Conv3d(child, full, kernel, terms, exact))
        elif isinstance(child, QLinear):
            setattr(parent, child_name, Int8Linear(child, full, kernel, terms, exact))
        elif _is_quantized_tsab(child):
            fast = Int8TSAB(child, exact)  # takes the float quantizers first, then its linears convert
            _replace_children(fast, full + ".", kernel, terms, exact)
            setattr(parent, child_name, fast)
        elif isinstance(child, (CFormer, ResDNet)):
            _replace_children(child, full + ".", kernel, terms, exact)  # its layers first, then the block
            setattr(parent, child_name, (Int8CFormer if isinstance(child, CFormer) else Int8ResDNet)(child))
        elif isinstance(child, ActQuantizer):
            if float(child.init_state) == 0:
                raise QSCIError(f"{full}: quantizer step is not initialised")
            setattr(parent, child_name, FusedFakeQuant(child))
        else:
            _replace_children(child, full + ".", kernel, terms, exact)


def _is_quantized_tsab(module: nn.Module) -> bool:
    return isinstance(module, TSAB) and bool(getattr(module, "quantized", False)) \
        and all(a.alpha.numel() in (1, module.heads) for a in (module.q_act, module.k_act, module.v_act))


def int8_layers(model: nn.Module) -> list[nn.Module]:
    """The integer-kernel layers of a converted model (for reports and tests)."""
    return [m for m in model.modules() if isinstance(m, (Int8Conv3d, Int8Linear))]
