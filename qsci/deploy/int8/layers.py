"""The integer-kernel layer state (`_Int8Base`) and `Int8Linear`.

A layer quantizes its input with the learned LSQ+ step and zero point into uint8 codes, runs the
oneDNN u8 x s8 -> fp32 kernel (`torch.ops.onednn.qconv3d_pointwise` / `qlinear_pointwise`) with
the per-output-channel weight steps, and gets float output. Why these ops and not the
`torch.ao.nn.quantized` modules: those requantize every output to 8 bits (a rounding the fake-quant
model does not have) and need the deprecated quint8 tensor type between layers; the oneDNN ops
take plain uint8/int8 tensors and return fp32, so the result equals the fake-quantized model up
to float summation order. b-bit weights (b <= 8) are int8 integers in [-2^(b-1), 2^(b-1)-1], so
4/3/2-bit models run exactly on the int8 kernels. Timings that drove the choice: docs/int8.md.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from qsci.deploy.int8.codes import (onednn_available, quantize_codes, quantize_codes_exact,
                                    quantize_codes_per_channel, quantize_codes_per_channel_exact)
from qsci.deploy.int8.fold import _act_params, fold_per_channel
from qsci.deploy.int8 import channel_passes, native
from qsci.quant.lsq import QLinear


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

    @property
    def native_codes(self) -> bool:
        """True when the compiled C passes can write this layer's input codes: per-tensor steps,
        default rounding, a zero point in the uint8 range, and the kernels built and switched on."""
        return not self.per_channel and not self.exact and 0 <= self.x_zp <= 255 and native.active()

    def codes(self, x: torch.Tensor, axis: int | None = None) -> torch.Tensor:
        """uint8 kernel input codes of x (channel axis `axis`, default the layer's input axis)."""
        axis = self.cin_axis if axis is None else axis
        if not self.per_channel:
            if self.exact:
                zr = self.x_zp + self.x_qmin
                return quantize_codes_exact(x, self.x_scale, zr, self.x_qmin, self.x_qmin + self.code_max)
            if axis == 1 and not x.is_contiguous(memory_format=torch.channels_last_3d) \
                    and native.row_stride(x) is not None and self.native_codes:  # a channel slice: no fp32 copy
                b, c, t, h, w = x.shape
                return native.row_codes(x, self.x_scale, self.x_zp, self.code_max).reshape(b, t, h, w, c) \
                    .permute(0, 4, 1, 2, 3)
            return quantize_codes(x, self.x_scale, self.x_zp, self.code_max)
        if self.exact:
            return quantize_codes_per_channel_exact(x, self.x_step, self.x_zr, self.x_offset, self.x_lo, self.x_hi, axis)
        shift = self.route == "shift" and 0 <= self.x_zp <= 255
        if channel_passes.channel_codes_apply(x, axis):  # one C pass instead of quantize_per_channel and clamps
            return channel_passes.channel_codes(x, self._channel_params(shift))
        return quantize_codes_per_channel(
            x, self.x_step, self.x_offset, self.x_lo, self.x_hi, axis,
            zp=self.x_zp if self.route == "shift" else None)

    def _channel_params(self, shift: bool) -> dict:
        """`native.channel_codes`'s arrays for this layer (made once): route "shift" adds the common
        zero point as torch.quantize_per_channel does, the other route its per-channel offsets."""
        if getattr(self, "_channel", None) is None:
            offset = torch.full_like(self.x_offset, float(self.x_zp)) if shift else self.x_offset
            self._channel = channel_passes.channel_params(self.x_step, offset, self.x_lo, self.x_hi, multiply=shift)
        return self._channel

    def concat_codes(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """(B*T*H*W, sum C_j) uint8 rows: the codes of the channel concatenation of (B, C_j, T, H, W)
        channels-last tensors (or channel slices of one), each written straight into its columns by
        the C kernel where it applies; else quantize each and concatenate the codes."""
        if not (self.native_codes and all(native.row_stride(x) is not None for x in tensors)):
            parts = [self.codes(x).permute(0, 2, 3, 4, 1).reshape(-1, x.shape[1]) for x in tensors]
            return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        b, _, t, h, w = tensors[0].shape
        out = torch.empty((b * t * h * w, sum(x.shape[1] for x in tensors)), dtype=torch.uint8)
        col = 0
        for x in tensors:
            native.row_codes(x, self.x_scale, self.x_zp, self.code_max, out=out[:, col:col + x.shape[1]])
            col += x.shape[1]
        return out

    def leaky_codes(self, y: torch.Tensor, slope: float) -> torch.Tensor:
        """`codes(leaky_relu(y))`: one fused pass where the C kernels are built (per-tensor steps,
        default rounding), else the two torch passes (LeakyReLU in place on y)."""
        if y.dtype in native.MID_DTYPES and native.dense(y) and self.native_codes:
            return native.leaky_codes(y, slope, self.x_scale, self.x_zp, self.code_max)
        return self.codes(F.leaky_relu_(y.float(), slope))

    def _sum_terms(self, y: torch.Tensor, dim: int) -> torch.Tensor:
        """Add the `terms` output slices of a folded layer (dim = output-channel axis)."""
        if self.terms == 1:
            return y
        summed = channel_passes.sum_terms(y, self.terms) if dim % y.ndim == 1 else None  # one C pass over channel rows
        if summed is not None:
            return summed
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
