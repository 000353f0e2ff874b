"""Spatial tiling so that large or long-CR measurements fit in memory.

A network sees `T x tile x tile` voxels at a time; overlapping tiles are blended with
linear ramps so that seams do not show. Pure array code: no model knowledge here.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

# Voxel budget per forward pass: one 256x256x8 measurement, the size the models are built for.
DEFAULT_VOXELS = 8 * 256 * 256


def tile_size_for(t: int, h: int, w: int, voxels: int = DEFAULT_VOXELS, multiple: int = 8) -> int | None:
    """Largest square tile (a multiple of `multiple`) within the voxel budget, or None if no tiling is needed."""
    if t * h * w <= voxels:
        return None
    side = int(math.sqrt(voxels / t)) // multiple * multiple
    return max(side, 4 * multiple)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def count_tiles(h: int, w: int, tile: int | None, overlap: int = 16) -> int:
    """How many forward passes `run_tiled` makes (1 without tiling): the denominator of progress."""
    if tile is None:
        return 1
    return len(_starts(h, min(tile, h), overlap)) * len(_starts(w, min(tile, w), overlap))


def _ramp(n: int, overlap: int) -> torch.Tensor:
    w = torch.ones(n)
    k = min(overlap, n // 2)
    if k > 0:
        edge = torch.linspace(0.0, 1.0, k + 2)[1:-1]
        w[:k] = edge
        w[-k:] = edge.flip(0)
    return w


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, tile: int, overlap: int = 16
) -> torch.Tensor:
    """Apply `fn: (1,1,T,h,w) -> (1,T,h,w)` over overlapping tiles of `x0 (1,1,T,H,W)`."""
    _, _, t, h, w = x0.shape
    th, tw = min(tile, h), min(tile, w)
    out = torch.zeros((1, t, h, w), dtype=torch.float32)
    weight = torch.zeros((h, w), dtype=torch.float32)
    wy, wx = _ramp(th, overlap), _ramp(tw, overlap)
    win = wy[:, None] * wx[None, :]  # (th, tw)
    for y0 in _starts(h, th, overlap):
        for x0_ in _starts(w, tw, overlap):
            patch = fn(x0[..., y0 : y0 + th, x0_ : x0_ + tw]).float().cpu()
            out[..., y0 : y0 + th, x0_ : x0_ + tw] += patch * win
            weight[y0 : y0 + th, x0_ : x0_ + tw] += win
    return out / weight.clamp(min=1e-8)
