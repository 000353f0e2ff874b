"""PSNR/SSIM against independent computations (hand formula, scikit-image's MATLAB-compatible SSIM)."""

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from qsci.metrics import frame_scores, psnr_frame, ssim_frame


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    ref = rng.random((64, 80))
    rec = np.clip(ref + 0.05 * rng.standard_normal(ref.shape), 0, 1)
    return ref, rec


def test_psnr_on_the_255_scale(pair):
    ref, rec = pair
    mse = np.mean((ref * 255 - rec * 255) ** 2)
    assert psnr_frame(ref, rec) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)
    assert psnr_frame(ref, ref) == float("inf")
    # a constant error of 1/255 is exactly 48.13 dB
    assert psnr_frame(np.zeros((8, 8)), np.full((8, 8), 1 / 255)) == pytest.approx(48.1308, abs=1e-4)


def test_psnr_does_not_clip_the_reconstruction():
    ref = np.full((8, 8), 0.5)
    assert psnr_frame(ref, np.full((8, 8), 1.5)) == pytest.approx(10 * np.log10(1 / 1.0), abs=1e-9)


def test_ssim_matches_matlab_form_of_scikit_image(pair):
    ref, rec = pair
    expected = structural_similarity(ref * 255, rec * 255, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=255)
    assert ssim_frame(ref, rec) == pytest.approx(expected, abs=1e-10)
    assert ssim_frame(ref, ref) == pytest.approx(1.0)


def test_frame_scores_flatten_leading_axes(pair):
    ref, rec = pair
    stack_ref = np.stack([ref, ref, rec])[None]  # (1, 3, H, W)
    stack_rec = np.stack([rec, ref, rec])[None]
    psnrs, ssims = frame_scores(stack_ref, stack_rec)
    assert len(psnrs) == 3 and psnrs[0] == pytest.approx(psnr_frame(ref, rec)) and psnrs[1] == float("inf")
    with pytest.raises(ValueError, match="shape"):
        frame_scores(stack_ref, stack_rec[:, :2])


def test_frame_scores_ssims_equal_independent_values(pair):
    """Each per-frame SSIM equals scikit-image's MATLAB-form value (not a placeholder such as 1.0)."""
    ref, rec = pair
    noisier = np.clip(ref + 0.2 * np.random.default_rng(1).standard_normal(ref.shape), 0, 1)
    refs = np.stack([ref, ref, ref])[None]  # (1, 3, H, W)
    recs = np.stack([rec, ref, noisier])[None]
    _, ssims = frame_scores(refs, recs)
    expected = [structural_similarity(a * 255, b * 255, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=255)
                for a, b in zip(refs[0], recs[0])]
    assert len(ssims) == 3
    assert ssims == pytest.approx(expected, abs=1e-10)
    assert ssims[1] == pytest.approx(1.0) and ssims[2] < ssims[0] < 0.99
