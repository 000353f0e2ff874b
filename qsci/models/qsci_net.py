"""Q-SCI below 8 bits: EfficientSCI at b bits plus the 8-bit FEM / VRM side branches (spec 4).

Also `init_from_fp`, which starts a quantized network from a full-precision one (the QAT
starting point): matching weights are copied, side branches and quantizer steps stay fresh.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn

from qsci.models.blocks import Layers, lrelu, pixel_unshuffle_frames
from qsci.models.efficientsci import EfficientSCI

SIDE_BITS = 8

# full-precision / 8-bit names -> names of the b-bit main path in the side-branch network
FP_TO_SIDE_NAMES = {
    "fem.0.": "fem_conv1_1.0.", "fem.2.": "fem_conv2_1.0.", "fem.4.": "fem_conv3_1.0.",
    "vrm.0.": "vrm_conv1_1.0.", "vrm.2.": "vrm_conv2_1.0.", "vrm.4.": "vrm_conv3_1.",
}


class QSCINet(EfficientSCI):
    """b-bit network with high-quality FEM and precise VRM (each conv + a parallel 8-bit 1x1x1)."""

    def _build_fem(self, c: int, layers: Layers) -> None:
        side = layers.at(SIDE_BITS)
        self.fem_conv1_1 = nn.Sequential(layers.conv(1, c, (3, 7, 7), padding=(1, 3, 3)), lrelu())
        self.fem_conv1_2 = nn.Sequential(side.conv(1, c, 1), lrelu())
        self.fem_conv2_1 = nn.Sequential(layers.conv(c, 2 * c, 3, padding=1), lrelu())
        self.fem_conv2_2 = nn.Sequential(side.conv(c, 2 * c, 1), lrelu())
        self.fem_conv3_1 = nn.Sequential(layers.conv(2 * c, 4 * c, 3, stride=(1, 2, 2), padding=1), lrelu())
        self.fem_conv3_2 = nn.Sequential(side.conv(8 * c, 4 * c, 1), lrelu())

    def _build_vrm(self, c: int, layers: Layers) -> None:
        side = layers.at(SIDE_BITS)
        self.vrm_conv1_1 = nn.Sequential(layers.conv(2 * c, 2 * c, 3, padding=1), lrelu())
        self.vrm_conv1_2 = nn.Sequential(side.conv(2 * c, 2 * c, 1), lrelu())
        self.vrm_conv2_1 = nn.Sequential(layers.conv(2 * c, c, 1), lrelu())
        self.vrm_conv2_2 = nn.Sequential(side.conv(2 * c, c, 1), lrelu())
        self.vrm_conv3_1 = layers.conv(c, 1, 3, padding=1)
        self.vrm_conv3_2 = side.conv(c, 1, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, T, H, W) -> (B, 4C, T, H/2, W/2)
        x1 = self.fem_conv1_1(x) + self.fem_conv1_2(x)  # (B, C, T, H, W)
        x2 = self.fem_conv2_1(x1) + self.fem_conv2_2(x1)  # (B, 2C, T, H, W)
        return self.fem_conv3_1(x2) + self.fem_conv3_2(pixel_unshuffle_frames(x2, 2))

    def decode(self, x: torch.Tensor) -> torch.Tensor:  # (B, 2C, T, H, W) -> (B, 1, T, H, W)
        x1 = self.vrm_conv1_1(x) + self.vrm_conv1_2(x)
        x2 = self.vrm_conv2_1(x1) + self.vrm_conv2_2(x1)
        return self.vrm_conv3_1(x2) + self.vrm_conv3_2(x2)

    def last_convs(self) -> list[nn.Module]:
        return [self.vrm_conv3_1, self.vrm_conv3_2]


def _rename_for(model: nn.Module, key: str) -> str:
    if not isinstance(model, QSCINet):
        return key
    for old, new in FP_TO_SIDE_NAMES.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def init_from_fp(model: nn.Module, fp_state: nn.Module | dict) -> dict[str, list[str]]:
    """Copy full-precision weights/biases into a quantized `model` (in place) for QAT.

    Returns {"copied": [...], "fresh": [...]} (target names). Quantizer steps stay uninitialised
    (`init_state == 0`) so they calibrate on the first training batch.
    """
    src = fp_state.state_dict() if isinstance(fp_state, nn.Module) else fp_state
    target = model.state_dict()
    copied = []
    with torch.no_grad():
        for key, value in src.items():
            name = _rename_for(model, key)
            if name in target and target[name].shape == value.shape:
                target[name].copy_(value)
                copied.append(name)
    model.load_state_dict(target)
    fresh = [k for k in target if k not in set(copied)]
    if getattr(model.config, "residual", False):
        _quiet_side_branches(model, fresh)
    return {"copied": copied, "fresh": fresh}


SIDE_START_SCALE = 0.01
SIDE_WEIGHT = re.compile(r"(fem|vrm)_conv\d_2\.(0\.)?weight")


def _quiet_side_branches(model: nn.Module, fresh: list[str]) -> None:
    """Scale fresh side-branch weights down, so a residual QAT model starts near its fp parent.

    The parent's output already sits close to the target; full-size random side branches would
    add noise of the order of the signal and cost the first few hundred samples (issue 11 probe).
    """
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key in fresh:
            if SIDE_WEIGHT.fullmatch(key) and key in params:
                params[key].mul_(SIDE_START_SCALE)
