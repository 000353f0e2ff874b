"""Numbers published in the Q-SCI paper and in re-runs of older methods (spec section 7).

Shown beside our measured numbers, always labelled as published; never mixed into our tables
as if we had measured them. `ops_g` is the paper's own unit of computation (see README).
"""

from __future__ import annotations

from dataclasses import dataclass

from qsci.data import BENCHMARK_SCENES


@dataclass(frozen=True)
class PublishedModel:
    name: str
    bits: int
    psnr: float  # mean over the six grayscale scenes, dB
    ssim: float
    params_m: float
    ops_g: float


QSCI_PAPER = (
    PublishedModel("EfficientSCI-S (paper)", 32, 35.51, 0.970, 3.78, 563.87),
    PublishedModel("Q-SCI 8-bit (paper)", 8, 35.57, 0.969, 0.95, 140.95),
    PublishedModel("Q-SCI 4-bit (paper)", 4, 34.69, 0.963, 0.48, 72.69),
    PublishedModel("Q-SCI 3-bit (paper)", 3, 33.62, 0.953, 0.37, 37.47),
    PublishedModel("Q-SCI 2-bit (paper)", 2, 31.62, 0.928, 0.25, 19.85),
)

# Per-scene PSNR (dB) from published re-runs, in the order of BENCHMARK_SCENES (the paper's).
PER_SCENE_PSNR = {
    "GAP-TV": (26.64, 20.65, 30.13, 34.50, 24.63, 25.02),
    "PnP-FFDNet": (30.39, 23.89, 32.66, 39.82, 24.57, 24.18),
    "BIRNAT": (32.71, 29.33, 38.70, 42.28, 27.84, 28.99),
    "STFormer": (35.51, 32.12, 42.69, 44.99, 31.17, 31.49),
}


def published_psnr(method: str, scenes: tuple[str, ...]) -> float:
    """Mean published PSNR of `method` over a subset of the six scenes."""
    table = dict(zip(BENCHMARK_SCENES, PER_SCENE_PSNR[method]))
    return sum(table[s] for s in scenes) / len(scenes)
