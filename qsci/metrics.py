"""PSNR and SSIM as in the benchmark protocol (spec section 3).

Frames are given in [0, 1] and scored on the 0..255 scale (peak 255, no clipping of the
reconstruction). SSIM is the MATLAB form: 11x11 Gaussian window (sigma 1.5), C1 = (0.01*255)^2,
C2 = (0.03*255)^2, "valid" filtering (a 5-pixel border dropped), mean over what remains.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

PEAK = 255.0


def _check(ref: np.ndarray, rec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref, dtype=np.float64)
    rec = np.asarray(rec, dtype=np.float64)
    if ref.shape != rec.shape:
        raise ValueError(f"reference shape {ref.shape} != reconstruction shape {rec.shape}")
    return ref * PEAK, rec * PEAK


def psnr_frame(ref: np.ndarray, rec: np.ndarray) -> float:
    """PSNR (dB) of one (H, W) frame given in [0, 1]."""
    a, b = _check(ref, rec)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(PEAK**2 / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    r = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    # Separable correlation with the Gaussian, then keep only fully covered pixels.
    out = correlate1d(correlate1d(img, g, axis=0, mode="constant"), g, axis=1, mode="constant")
    r = len(g) // 2
    return out[r:-r, r:-r]


def ssim_frame(ref: np.ndarray, rec: np.ndarray) -> float:
    """MATLAB-form SSIM of one (H, W) frame given in [0, 1]."""
    a, b = _check(ref, rec)
    c1, c2 = (0.01 * PEAK) ** 2, (0.03 * PEAK) ** 2
    g = _gaussian_window()
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    s_aa = _filter_valid(a * a, g) - mu_a**2
    s_bb = _filter_valid(b * b, g) - mu_b**2
    s_ab = _filter_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2)
    return float(np.mean(num / den))


def frame_scores(ref: np.ndarray, rec: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-frame PSNR and SSIM lists for (..., H, W) stacks (leading axes flattened)."""
    ref = np.asarray(ref)
    rec = np.asarray(rec)
    if ref.shape != rec.shape:
        raise ValueError(f"reference shape {ref.shape} != reconstruction shape {rec.shape}")
    ref2 = ref.reshape(-1, *ref.shape[-2:])
    rec2 = rec.reshape(-1, *rec.shape[-2:])
    psnrs = [psnr_frame(a, b) for a, b in zip(ref2, rec2)]
    ssims = [ssim_frame(a, b) for a, b in zip(ref2, rec2)]
    return psnrs, ssims
