"""EfficientSCI building blocks, shared by the full-precision and quantized networks.

Every block takes a `Layers` factory, so the same code builds nn.Conv3d / nn.Linear (bits 32)
or QConv3d / QLinear (bits < 32) and the module names stay identical to the authors' files.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from qsci.quant.lsq import ActQuantizer, QConv3d, QLinear

LRELU_SLOPE = 0.01
FULL_PRECISION = 32


def lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(LRELU_SLOPE, inplace=True)


@dataclass(frozen=True)
class Layers:
    """Factory for convs / linears at one bit width (32 = plain float layers)."""

    bits: int = FULL_PRECISION
    per_channel_act: bool = True

    @property
    def quantized(self) -> bool:
        return self.bits < FULL_PRECISION

    def at(self, bits: int) -> "Layers":
        """The same factory at another bit width (the 8-bit side branches)."""
        return replace(self, bits=bits)

    def conv(self, cin: int, cout: int, k, stride=1, padding=0) -> nn.Conv3d:
        if self.quantized:
            return QConv3d(cin, cout, k, stride=stride, padding=padding, bits=self.bits,
                           per_channel_act=self.per_channel_act)
        return nn.Conv3d(cin, cout, k, stride=stride, padding=padding)

    def linear(self, cin: int, cout: int, bias: bool = True) -> nn.Linear:
        if self.quantized:
            return QLinear(cin, cout, bias=bias, bits=self.bits, per_channel_act=self.per_channel_act)
        return nn.Linear(cin, cout, bias=bias)


def pixel_shuffle_frames(x: torch.Tensor, r: int = 2) -> torch.Tensor:
    """Each frame's F.pixel_shuffle: channel c*r*r + i*r + j lands at pixel (h*r + i, w*r + j)."""
    if x.is_contiguous():  # one copy instead of three (fold, shuffle, the next conv's input)
        return rearrange(x, "b (c i j) t h w -> b c t (h i) (w j)", i=r, j=r)
    return _per_frame(F.pixel_shuffle, x, r)


def pixel_unshuffle_frames(x: torch.Tensor, r: int = 2) -> torch.Tensor:
    """Each frame's F.pixel_unshuffle, the inverse of `pixel_shuffle_frames`."""
    if x.is_contiguous():
        return rearrange(x, "b c t (h i) (w j) -> b (c i j) t h w", i=r, j=r)
    return _per_frame(F.pixel_unshuffle, x, r)


def _per_frame(shuffle, x: torch.Tensor, r: int) -> torch.Tensor:
    """Channels-last input (the int8 and bf16 runners'): folding T into the batch is a view there,
    and torch's channels-last (un)shuffle keeps the layout; a reorder costs up to 3x (T preset)."""
    frames = rearrange(x, "b c t h w -> (b t) c h w")
    return rearrange(shuffle(frames, r), "(b t) c h w -> b c t h w", b=x.shape[0])


class LearnableBias(nn.Module):
    """Per-head shift (the query/key shift of Q-SCI), parameter `bias` of shape (1, heads, 1, 1)."""

    def __init__(self, heads: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, heads, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, heads, T, d)
        return x + self.bias


class TSAB(nn.Module):
    """Temporal self-attention: tokens are the T frames of each pixel.

    qkv: g -> 3g/2 (no bias), `heads` heads over g/2 features, scale (g/4)^-0.5 (from g, as the
    authors compute it), proj: g/2 -> g. Quantized: q/k get a learned per-head shift, then
    q, k, v and the softmax output are fake-quantized per head.
    """

    def __init__(self, g: int, layers: Layers, heads: int = 4):
        super().__init__()
        if g % (2 * heads):
            raise ValueError(f"TSAB width {g} must be divisible by {2 * heads}")
        self.heads = heads
        self.inner = g // 2
        self.scale = (g / 4) ** -0.5
        self.qkv = layers.linear(g, 3 * self.inner, bias=False)
        self.proj = layers.linear(self.inner, g)
        self.quantized = layers.quantized
        if self.quantized:
            self.moveq = LearnableBias(heads)
            self.movek = LearnableBias(heads)
            for name in ("q_act", "k_act", "v_act", "attn_act"):
                setattr(self, name, ActQuantizer(layers.bits, heads, per_channel=True, ch_axis=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, _, h, _ = x.shape
        tokens = rearrange(x, "b g t h w -> (b h w) t g")  # one token sequence per pixel
        q, k, v = rearrange(self.qkv(tokens), "n t (qkv heads d) -> qkv n heads t d", qkv=3, heads=self.heads)
        if self.quantized:
            q, k, v = self.q_act(self.moveq(q)), self.k_act(self.movek(k)), self.v_act(v)
        attn = (q @ k.transpose(-2, -1)) * self.scale  # (N, heads, T, T)
        attn = attn.softmax(dim=-1)
        if self.quantized:
            attn = self.attn_act(attn)
        out = self.proj(rearrange(attn @ v, "n heads t d -> n t (heads d)"))
        return rearrange(out, "(b h w) t g -> b g t h w", b=b, h=h)


class CFormer(nn.Module):
    """SCB (spatial convs) + TSAB (temporal attention) + residual, then a conv FFN with residual."""

    def __init__(self, g: int, layers: Layers, heads: int = 4):
        super().__init__()
        self.scb = nn.Sequential(
            layers.conv(g, g, (1, 3, 3), padding=(0, 1, 1)), lrelu(),
            layers.conv(g, g, (1, 3, 3), padding=(0, 1, 1)),
        )
        self.tsab = TSAB(g, layers, heads)
        self.ffn = nn.Sequential(layers.conv(g, g, 3, padding=1), lrelu(), layers.conv(g, g, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, g, T, H, W)
        s = self.scb(x) + self.tsab(x) + x
        return self.ffn(s) + s


class ResDNet(nn.Module):
    """Dense group block: group i sees all earlier group outputs plus its own input slice."""

    def __init__(self, dim: int, group_num: int, layers: Layers, heads: int = 4):
        super().__init__()
        if dim % group_num:
            raise ValueError(f"{dim} channels cannot be split into {group_num} groups")
        g = dim // group_num
        self.group_num = group_num
        self.cformer_list = nn.ModuleList(CFormer(g, layers, heads) for _ in range(group_num))
        self.dense_conv = nn.ModuleList(
            nn.Sequential(layers.conv((i + 1) * g, g, 1), lrelu()) for i in range(1, group_num)
        )
        self.last_conv = layers.conv(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, dim, T, h, w)
        groups = x.chunk(self.group_num, dim=1)
        outs = [self.cformer_list[0](groups[0])]
        for i in range(1, self.group_num):
            z = self.dense_conv[i - 1](torch.cat([*outs, groups[i]], dim=1))  # (B, g, T, h, w)
            outs.append(self.cformer_list[i](z))
        return self.last_conv(torch.cat(outs, dim=1)) + x
