"""`training.train.compute_loss`: the `psnr` kind weights each crop by its own inverse MSE."""

from __future__ import annotations

import pytest
import torch

from training.config import TrainConfig
from training.train import compute_loss


def _batch():
    x = torch.zeros(2, 2, 4, 4)
    out = torch.zeros(2, 2, 4, 4, requires_grad=True)
    with torch.no_grad():
        out[0] += 0.01  # an easy crop: MSE 1e-4 (40 dB)
        out[1] += 0.1  # a hard crop: MSE 1e-2 (20 dB)
    return out, x


def test_mse_and_rmse_are_batch_means():
    out, x = _batch()
    assert compute_loss(out, x, "mse").item() == pytest.approx((1e-4 + 1e-2) / 2)
    assert compute_loss(out, x, "rmse").item() == pytest.approx(((1e-4 + 1e-2) / 2) ** 0.5)


def test_psnr_loss_has_the_gradient_of_the_mean_log_mse():
    out, x = _batch()
    compute_loss(out, x, "psnr").backward()
    g = out.grad.clone()
    out.grad = None
    per_crop = (out - x).square().flatten(1).mean(1)
    torch.log(per_crop).mean().backward()
    ratio = g / out.grad
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-4)  # same direction
    # the easy crop's gradient is not drowned: per pixel 10x the hard crop's (error 0.01 vs 0.1),
    # where the batch MSE gives it a tenth
    assert (g[0].abs().mean() / g[1].abs().mean()).item() == pytest.approx(10.0, rel=1e-4)
    # value: weights 1/MSE normalised to mean 1 -> 2 / (1/1e-4 + 1/1e-2)
    assert compute_loss(out, x, "psnr").item() == pytest.approx(2 / (1e4 + 1e2), rel=1e-3)  # eps 1e-8 in the weights


def test_unknown_loss_is_refused():
    with pytest.raises(Exception, match="loss must be one of"):
        TrainConfig(loss="l1").validate()
