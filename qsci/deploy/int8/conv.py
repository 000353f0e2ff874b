"""`Int8Conv3d`: a QConv3d on integer kernels, with the entry points the fused blocks call
(frames as one 2-D conv, 1x1x1 convs as matmuls on code rows, the one-channel first conv with its
width taps as channels)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qsci.deploy.int8.layers import _Int8Base
from qsci.errors import QSCIError
from qsci.quant.lsq import QConv3d


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

    def _forward_width_taps(self, u: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The conv with its kw width taps as input channels (padded to a multiple of 4): channel j
        at column x holds the code of column x + j - pad (the zero-point code outside, an exact 0),
        and the kernel becomes (kt, kh, 1) over kw channels. Exact (the same integer sums); T 4-bit
        first conv at 256x256x8: 14.4 ms -> 5.3 ms plus 1.5 ms to lay out the channels. The frame
        and row padding is written into the taps too (zero-point codes), and the kernel runs
        unpadded: oneDNN's kernel for rows of 256 or more output columns padded with code 0, not
        the zero point (up to 3.8 off at the borders of the trained 3-bit model, 0.28 dB on
        Drop8), while the smaller sizes the tests used were right."""
        b, _, t, h, w = u.shape
        o, kw, pw = self.weight_int.shape[0], self.weight_int.shape[-1], self.padding[2]
        pt, ph = self.padding[0], self.padding[1]
        k = (kw + 3) // 4 * 4
        if getattr(self, "_packed_taps", None) is None:
            wt = torch.zeros(o, k, *self.weight_int.shape[2:4], 1, dtype=torch.int8)
            wt[:, :kw, :, :, 0] = self.weight_int[:, 0].permute(0, 3, 1, 2)
            self._packed_taps = torch.ops.onednn.qconv_prepack(
                wt, self.weight_scale, self.x_scale, self.x_zp, self.stride, [0, 0, 0], self.dilation, 1, None)
        w_out = w + 2 * pw - kw + 1
        src = u.reshape(b, t, h, w)  # one channel: every memory format is this
        taps = torch.full((b, t + 2 * pt, h + 2 * ph, w_out, k), self.x_zp, dtype=torch.uint8)
        inner = taps[:, pt:pt + t, ph:ph + h]
        for j in range(kw):
            lo, hi = max(0, pw - j), min(w_out, w + pw - j)
            if hi > lo:
                inner[..., lo:hi, j] = src[..., lo + j - pw:hi + j - pw]
        return torch.ops.onednn.qconv3d_pointwise(
            taps.permute(0, 4, 1, 2, 3), self.x_scale, self.x_zp, self._packed_taps, self.weight_scale, self.w_zp,
            self.bias, self.stride, [0, 0, 0], self.dilation, 1, 1.0, 0, dtype, "none", [], "")

    @property
    def pointwise(self) -> bool:
        """A fusable 1x1x1 conv with unit stride and no padding: a matmul on channels-last rows."""
        return self.fuse and self.fusable and self.weight_int.shape[2:].numel() == 1 \
            and self.stride == [1, 1, 1] and self.padding == [0, 0, 0] and self.groups == 1

    @property
    def framewise(self) -> bool:
        """A (1, k, k) kernel with no temporal stride or padding: a 2-D conv over the B*T frames."""
        return self.weight_int.shape[2] == 1 and self.stride[0] == 1 and self.padding[0] == 0

    def forward_frames(self, u: torch.Tensor, accum: torch.Tensor | None = None,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """uint8 codes (B, Cin, T, H, W) -> `dtype` (B, Cout, T, H', W'), channels-last, as ONE 2-D
        conv over the frames (a view of channels-last memory: no copy); `accum` (the output's
        shape, channels-last) is added by the kernel (oneDNN sum post-op; fp32 output)."""
        b, c, t, h, w = u.shape
        if getattr(self, "_packed2d", None) is None:
            self._packed2d = torch.ops.onednn.qconv_prepack(
                self.weight_int[:, :, 0].contiguous(), self.weight_scale, self.x_scale, self.x_zp, self.stride[1:],
                self.padding[1:], self.dilation[1:], self.groups, None)
        frames = u.contiguous(memory_format=torch.channels_last_3d).transpose(1, 2).reshape(b * t, c, h, w)
        args = (self.bias, self.stride[1:], self.padding[1:], self.dilation[1:], self.groups, 1.0, 0,
                dtype if accum is None else torch.float32)
        if accum is None:
            y = torch.ops.onednn.qconv2d_pointwise(frames, self.x_scale, self.x_zp, self._packed2d, self.weight_scale,
                                                   self.w_zp, *args, "none", [], "")
        else:
            acc = accum.transpose(1, 2).reshape(b * t, *accum.shape[1:2], *accum.shape[3:])
            y = torch.ops.onednn.qconv2d_pointwise.binary(
                frames, self.x_scale, self.x_zp, self._packed2d, self.weight_scale, self.w_zp, acc, *args,
                1.0, 0, "sum", 1.0, "none", [], "")
        return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)

    def forward_codes(self, u: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """uint8 codes (B, Cin, T, H, W) -> `dtype` output, channels-last (a fusable layer)."""
        if self._packed is None:
            self._packed = torch.ops.onednn.qconv_prepack(
                self.weight_int, self.weight_scale, self.x_scale, self.x_zp, self.stride,
                self.padding, self.dilation, self.groups, None)
        return torch.ops.onednn.qconv3d_pointwise(
            u.contiguous(memory_format=torch.channels_last_3d), self.x_scale, self.x_zp, self._packed,
            self.weight_scale, self.w_zp, self.bias, self.stride, self.padding, self.dilation, self.groups,
            1.0, 0, dtype, "none", [], "")

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
                     accum: torch.Tensor | None = None, leaky: float | None = None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """1x1x1 conv on (N, C_j) uint8 code rows that are consecutive slices of its input channels:
        the codes are concatenated (one quantizer per layer, so the codes of a concatenation are the
        concatenation of the codes; 4x fewer bytes than the float torch.cat of the model), then one
        u8 x s8 matmul. `add` (N, Cout) is added by the kernel (binary add post-op); `accum` receives the
        output by the kernel's sum post-op. (One kernel per part, summed by post-ops, measured
        10.2 ms against 7.0 for this on the 64-channel last conv.) `leaky` (negative slope; not
        with add/accum) applies LeakyReLU as the kernel's post-op: one pass over the output fewer.
        `dtype`: the output's, without add/accum (those write fp32)."""
        if leaky is not None and (add is not None or accum is not None):
            raise ValueError("forward_rows: leaky applies to the conv output alone, not with add/accum")
        u = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if accum is not None:
            return torch.ops.onednn.qlinear_pointwise.binary(
                u.contiguous(), self.x_scale, self.x_zp, self.forward_rows_prepacked(), self.weight_scale,
                self.w_zp, accum, self.bias, 1.0, 0, torch.float32, 1.0, 0, "sum", 1.0, "none", [], "")
        if add is not None:  # the kernel's binary add post-op: no second pass over the output
            return torch.ops.onednn.qlinear_pointwise.binary(
                u.contiguous(), self.x_scale, self.x_zp, self.forward_rows_prepacked(), self.weight_scale,
                self.w_zp, add, self.bias, 1.0, 0, torch.float32, 1.0, 0, "add", 1.0, "none", [], "")
        post, args = ("none", []) if leaky is None else ("leaky_relu", [leaky])
        y = torch.ops.onednn.qlinear_pointwise(
            u.contiguous(), self.x_scale, self.x_zp, self.forward_rows_prepacked(), self.weight_scale, self.w_zp,
            self.bias, 1.0, 0, dtype, post, args, "")
        return y
