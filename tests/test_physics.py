import numpy as np
import pytest
import torch

from qsci.errors import QSCIError
from qsci.physics import SCIOperator, random_binary_mask, simulate_measurement

MASKS = {
    "binary": random_binary_mask(8, 16, 24, seed=1),
    "float": np.random.default_rng(2).random((5, 16, 24)).astype(np.float32),
    "with-zero-pixels": np.pad(random_binary_mask(4, 8, 8, seed=3), ((0, 0), (4, 4), (4, 4))),
}


@pytest.mark.parametrize("name", MASKS)
def test_adjointness(name):
    assert abs(SCIOperator(MASKS[name]).adjointness_test()) < 1e-5


@pytest.mark.parametrize("name", MASKS)
def test_forward_is_the_masked_sum_and_keeps_array_type(name):
    mask = MASKS[name]
    x = np.random.default_rng(0).random(mask.shape).astype(np.float32)
    op = SCIOperator(mask)
    y = op.A(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    np.testing.assert_allclose(y, (mask * x).sum(0), rtol=1e-6)
    yt = op.A(torch.from_numpy(x)[None])  # batch axis
    assert isinstance(yt, torch.Tensor) and yt.shape == (1, *mask.shape[1:])


def test_phi_s_and_network_input():
    mask = MASKS["with-zero-pixels"]
    op = SCIOperator(mask)
    assert float(op.Phi_s.min()) >= 1.0  # zeros replaced by 1
    y = np.random.default_rng(1).random(mask.shape[1:]).astype(np.float32)
    x0 = op.network_input(y)
    assert x0.shape == (1, 1, *mask.shape)
    y_n = y / op.Phi_s.numpy()
    np.testing.assert_allclose(x0[0, 0].numpy(), y_n[None] + mask * y_n[None], rtol=1e-6)


def test_random_mask_is_seeded_and_binary():
    a, b = random_binary_mask(3, 5, 7, seed=9), random_binary_mask(3, 5, 7, seed=9)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, 1.0} and a.shape == (3, 5, 7)
    assert not np.array_equal(a, random_binary_mask(3, 5, 7, seed=10))


def test_noise_is_seeded_and_scaled():
    mask = random_binary_mask(8, 64, 64, seed=0)
    x = np.full(mask.shape, 0.5, np.float32)
    clean = simulate_measurement(x, mask)
    noisy = simulate_measurement(x, mask, read_noise_std=0.1, seed=4)
    np.testing.assert_array_equal(noisy, simulate_measurement(x, mask, read_noise_std=0.1, seed=4))
    assert np.std(noisy - clean) == pytest.approx(0.1, rel=0.1)
    shot = simulate_measurement(x, mask, shot_noise_photons=100.0, seed=4)
    # Poisson: variance of y*photons equals its mean
    assert np.var((shot - clean) * 100).mean() == pytest.approx((clean * 100).mean(), rel=0.15)


@pytest.mark.parametrize("mask, needle", [
    (np.ones((4, 4), np.float32), "3 axes"),
    (np.zeros((2, 4, 4), np.float32), "all zeros"),
    (np.full((2, 4, 4), np.nan, np.float32), "NaN"),
])
def test_bad_masks(mask, needle):
    with pytest.raises(QSCIError, match=needle):
        SCIOperator(mask)


def test_shape_mismatch_is_reported():
    op = SCIOperator(random_binary_mask(8, 16, 16))
    with pytest.raises(QSCIError, match="does not end with the mask shape"):
        op.A(np.zeros((8, 16, 15), np.float32))
    with pytest.raises(QSCIError, match="does not end with the mask size"):
        op.A_adjoint(np.zeros((15, 16), np.float32))
