"""The fused graph: converted blocks whose sums, concatenations and shuffles avoid fp32 passes.

Fused graph (default, `fuse=True`, per-tensor layers on oneDNN): one wrapper per layer leaves
most of the time in the float passes between the kernels (docs/int8.md: the integer convs were a
fifth of the T 4-bit call), so the blocks are replaced too: planar integer attention
(`Int8TSAB.forward_tokens`), residual sums and concatenations in the kernels or on uint8 codes
(`Int8CFormer`, `Int8ResDNet`), the full-resolution stages on codes (`Int8QSCINet`), the
one-channel first conv with its width taps as channels. Same values up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from qsci.deploy.int8 import native
from qsci.deploy.int8.attention import Int8TSAB
from qsci.deploy.int8.conv import Int8Conv3d
from qsci.models.qsci_net import QSCINet


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
        conv1, conv2, qkv = self.scb[0], self.scb[2], self.tsab.qkv
        f1, f2 = self.ffn[0], self.ffn[2]
        fast = all(layer.native_codes for layer in (conv1, qkv, f1))
        if fast:  # x's codes for the SCB conv and the attention's qkv in one pass
            u1, uq = native.sum_codes(x, None, 1.0, (conv1.x_scale, conv1.x_zp, conv1.code_max),
                                      (qkv.x_scale, qkv.x_zp, qkv.code_max))
        else:
            u1, uq = conv1.codes(x), None
        mid = native.mid_dtype() if fast else torch.float32  # conv outputs only a C pass reads
        u = conv2.leaky_codes(conv1.forward_frames(u1, dtype=mid), self.scb[1].negative_slope)
        s = _cl(self.tsab.forward_tokens(x, add=_rows(x), codes=uq), x.shape)  # tsab(x) + x, a new buffer
        y = conv2.forward_frames(u, dtype=mid)  # scb(x) (conv2d's sum post-op copies the accumulator: added here)
        if fast and y.stride() == s.stride():
            y = f1.forward_codes(native.add_codes(s, y, f1.x_scale, f1.x_zp, f1.code_max), dtype=mid)  # s += y
        else:
            y = f1(s.add_(y))
        u = f2.leaky_codes(y, self.ffn[1].negative_slope)
        return _cl(f2.forward_rows([_rows(u)], accum=_rows(s)), s.shape)


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
            z = conv.forward_rows([conv.concat_codes([*outs, groups[i]])], leaky=act.negative_slope)
            outs.append(self.cformer_list[i](_cl(z, shape)))
        conv = self.last_conv
        x = x.contiguous(memory_format=torch.channels_last_3d)
        out = conv.forward_rows([conv.concat_codes(outs)], add=_rows(x))
        return _cl(out, x.shape)


def _unshuffle_rows(u: torch.Tensor) -> torch.Tensor:
    """pixel_unshuffle_frames(u, 2) of channels-last uint8 codes, as (B*T*H/2*W/2, 4C) rows with
    the channels in (i, j, c) order (`_shuffle_order`): ONE byte copy of whole C-byte pixels (the
    float model unshuffles fp32, 4x the bytes; the (c, i, j) order gathered single bytes, 3x slower)."""
    b, c, t, h, w = u.shape
    rows = u.permute(0, 2, 3, 4, 1).reshape(b, t, h // 2, 2, w // 2, 2, c)
    return rows.permute(0, 1, 2, 4, 3, 5, 6).reshape(-1, 4 * c)


def _shuffle_codes(rows: torch.Tensor, like: tuple[int, ...]) -> torch.Tensor:
    """pixel_shuffle_frames(., 2) of (B*T*h*w, 4C) uint8 code rows whose channels are in (i, j, c)
    order (`_shuffle_order`) -> (B, C, T, 2h, 2w) channels-last: a copy of whole C-byte pixels."""
    b, _, t, h, w = like
    c = rows.shape[1] // 4
    full = rows.reshape(b, t, h, w, 2, 2, c).permute(0, 1, 2, 4, 3, 5, 6).reshape(b, t, 2 * h, 2 * w, c)
    return full.permute(0, 4, 1, 2, 3)


def _shuffle_order(c: int) -> torch.Tensor:
    """Index map from (i, j, c) channel order to pixel_shuffle's (c, i, j): new k = (2i + j) C + c."""
    return torch.arange(4 * c).reshape(c, 4).t().reshape(-1)


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

    def reorder_shuffle_channels(self) -> None:
        """Put the channels on both sides of the pixel (un)shuffles in (i, j, c) order: up_conv's
        output rows and fem_conv3_2's input columns are permuted (exact, done once at conversion),
        so the byte shuffles move whole pixels (`_shuffle_codes`, `_unshuffle_rows`)."""
        up, side = self.up_conv, self.fem_conv3_2[0]
        with torch.no_grad():
            order = _shuffle_order(up.weight_int.shape[0] // 4)
            up.weight_int = up.weight_int[order].contiguous()
            up.weight_scale = up.weight_scale[order].contiguous()
            if up.bias is not None:
                up.bias = up.bias[order].contiguous()
            side.weight_int = side.weight_int[:, _shuffle_order(side.weight_int.shape[1] // 4)].contiguous()
        for conv in (up, side):
            conv._packed = conv._packed_linear = None

    @staticmethod
    def _pre(seq: nn.Sequential, u: torch.Tensor, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, float]:
        """A branch's conv output (`dtype`) from its input codes, and the LeakyReLU slope still to
        apply (1.0 where the kernel applied it: 1x1x1 convs on code rows)."""
        conv, slope = seq[0], seq[1].negative_slope
        if conv.pointwise:
            b, _, t, h, w = u.shape
            return _cl(conv.forward_rows([_rows(u)], leaky=slope, dtype=dtype), (b, -1, t, h, w)), 1.0
        y = conv._forward_width_taps(u, dtype) if conv.width_taps else conv.forward_codes(u, dtype)
        return y, slope

    @staticmethod
    def _branch_dtype(*layers: nn.Module) -> torch.dtype:
        """bf16 branch outputs where the C pass summing them will read them (`native.mid_dtype`)."""
        return native.mid_dtype() if all(layer.native_codes for layer in layers) else torch.float32

    @staticmethod
    def _sum_codes(a: tuple[torch.Tensor, float], b: tuple[torch.Tensor, float], first: nn.Module,
                   second: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """The codes that layers `first` and `second` take of `leaky(a) + leaky(b)` (a branch sum):
        one pass of the C kernel where it is built (`native.sum_codes`), else LeakyReLU, add and two
        quantizes."""
        (ya, sa), (yb, sb) = a, b
        if sb != 1.0:
            yb = F.leaky_relu_(yb.float(), sb)
        if first.native_codes and second.native_codes and ya.stride() == yb.stride() and native.dense(ya) \
                and ya.dtype == yb.dtype:
            return native.sum_codes(ya, yb, sa, (first.x_scale, first.x_zp, first.code_max),
                                    (second.x_scale, second.x_zp, second.code_max))
        ya, yb = ya.float(), yb.float()
        s = (ya if sa == 1.0 else F.leaky_relu_(ya, sa)).add_(yb)
        return first.codes(s), second.codes(s)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, T, H, W) -> (B, 4C, T, H/2, W/2)
        c11, c12 = self.fem_conv1_1[0], self.fem_conv1_2[0]
        mid = self._branch_dtype(self.fem_conv2_1[0], self.fem_conv2_2[0])
        u21, u22 = self._sum_codes(self._pre(self.fem_conv1_1, c11.codes(x), mid),
                                   self._pre(self.fem_conv1_2, c12.codes(x), mid),
                                   self.fem_conv2_1[0], self.fem_conv2_2[0])
        mid = self._branch_dtype(self.fem_conv3_1[0], self.fem_conv3_2[0])
        u31, u32 = self._sum_codes(self._pre(self.fem_conv2_1, u21, mid), self._pre(self.fem_conv2_2, u22, mid),
                                   self.fem_conv3_1[0], self.fem_conv3_2[0])
        out, slope = self._pre(self.fem_conv3_1, u31)
        out = F.leaky_relu_(out, slope) if slope != 1.0 else out
        conv, act = self.fem_conv3_2
        side = conv.forward_rows([_unshuffle_rows(u32)], leaky=act.negative_slope)
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
        mid = self._branch_dtype(self.vrm_conv2_1[0], self.vrm_conv2_2[0])
        u21, u22 = self._sum_codes(self._pre(self.vrm_conv1_1, u11, mid), self._pre(self.vrm_conv1_2, u12, mid),
                                   self.vrm_conv2_1[0], self.vrm_conv2_2[0])
        mid = self._branch_dtype(self.vrm_conv3_1, self.vrm_conv3_2)
        u31, u32 = self._sum_codes(self._pre(self.vrm_conv2_1, u21, mid), self._pre(self.vrm_conv2_2, u22, mid),
                                   self.vrm_conv3_1, self.vrm_conv3_2)
        y = self.vrm_conv3_1.forward_codes(u31)
        last = self.vrm_conv3_2
        y = _cl(last.forward_rows([_rows(u32)], accum=_rows(y)), full).squeeze(1)  # (B, T, H, W)
        return x.squeeze(1) + y if self.config.residual else y
