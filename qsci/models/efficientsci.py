"""EfficientSCI (spec section 4) at full precision, and the Q-SCI 8-bit graph on the same code.

Module names (fem.0/2/4, resdnet_list.i..., up_conv, vrm.0/2/4) equal the authors' state dicts,
so their files load strictly with no key mapping.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from qsci.errors import QSCIError
from qsci.models.blocks import Layers, ResDNet, lrelu, pixel_shuffle_frames
from qsci.models.config import ModelConfig


class EfficientSCI(nn.Module):
    """x0 (B, 1, T, H, W) -> reconstruction (B, T, H, W); H and W must be even."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config.in_ch
        layers = Layers(config.bits, config.per_channel_act)
        self._build_fem(c, layers)
        self.resdnet_list = nn.ModuleList(
            ResDNet(4 * c, config.group_num, layers, config.heads) for _ in range(config.units)
        )
        self.up_conv = layers.conv(4 * c, 8 * c, 1)
        self._build_vrm(c, layers)

    def _build_fem(self, c: int, layers: Layers) -> None:
        self.fem = nn.Sequential(
            layers.conv(1, c, (3, 7, 7), padding=(1, 3, 3)), lrelu(),
            layers.conv(c, 2 * c, 3, padding=1), lrelu(),
            layers.conv(2 * c, 4 * c, 3, stride=(1, 2, 2), padding=1), lrelu(),
        )

    def _build_vrm(self, c: int, layers: Layers) -> None:
        self.vrm = nn.Sequential(
            layers.conv(2 * c, 2 * c, 3, padding=1), lrelu(),
            layers.conv(2 * c, c, 1), lrelu(),
            layers.conv(c, 1, 3, padding=1),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, T, H, W) -> (B, 4C, T, H/2, W/2)
        return self.fem(x)

    def decode(self, x: torch.Tensor) -> torch.Tensor:  # (B, 2C, T, H, W) -> (B, 1, T, H, W)
        return self.vrm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 1:
            raise QSCIError(f"network input must be (B, 1, T, H, W), got {tuple(x.shape)}")
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise QSCIError(f"frame size {tuple(x.shape[-2:])} must be even")
        out = self.encode(x)  # (B, 4C, T, H/2, W/2)
        for block in self.resdnet_list:
            out = block(out)
        out = pixel_shuffle_frames(self.up_conv(out), 2)  # (B, 8C, T, H/2, W/2) -> (B, 2C, T, H, W)
        out = self.decode(out).squeeze(1)  # (B, T, H, W)
        return x.squeeze(1) + out if self.config.residual else out

    def progress_blocks(self) -> list[nn.Module]:
        """The stages after which a long forward pass can say how far it is (most of its time)."""
        return list(self.resdnet_list)

    def last_convs(self) -> list[nn.Module]:
        """The convolution(s) whose sum is the output; zeroed, a residual model returns its input."""
        return [self.vrm[4]]


def zero_last_layer(model: EfficientSCI) -> None:
    """Zero the output convolution(s): a residual network then starts exactly at its input."""
    with torch.no_grad():
        for conv in model.last_convs():
            conv.weight.zero_()
            if conv.bias is not None:
                conv.bias.zero_()
