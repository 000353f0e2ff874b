"""The video SCI forward model as an operator object (spec section 1).

A scene `x` is (T, H, W) in [0, 1]; a mask `Phi` is (T, H, W); the snapshot is
`y = sum_t Phi[t] * x[t]`, shape (H, W). Leading batch axes are allowed everywhere.
numpy in -> numpy out, torch in -> torch out; computation is float32.
"""

from __future__ import annotations

import numpy as np
import torch

from qsci.errors import QSCIError

ArrayLike = np.ndarray | torch.Tensor


def _as_tensor(a: ArrayLike) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.to(torch.float32)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _like(result: torch.Tensor, template: ArrayLike) -> ArrayLike:
    return result.numpy() if isinstance(template, np.ndarray) else result


class SCIOperator:
    """Coded-aperture temporal compression `A` and its adjoint for one mask.

    >>> op = SCIOperator(np.ones((2, 4, 4), np.float32))
    >>> op.A(np.full((2, 4, 4), 0.5, np.float32)).shape
    (4, 4)
    >>> abs(op.adjointness_test()) < 1e-4
    True
    """

    def __init__(self, mask: ArrayLike):
        mask_t = _as_tensor(mask)
        if mask_t.ndim != 3:
            raise QSCIError(f"mask must have 3 axes (T, H, W), got shape {tuple(mask_t.shape)}")
        if not torch.isfinite(mask_t).all():
            raise QSCIError("mask contains NaN or Inf values")
        if float(mask_t.abs().sum()) == 0.0:
            raise QSCIError("mask is all zeros: nothing would be measured")
        self.mask = mask_t.contiguous()  # (T, H, W)

    @property
    def cr(self) -> int:
        return int(self.mask.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.mask.shape)  # type: ignore[return-value]

    def to(self, device: torch.device | str) -> "SCIOperator":
        self.mask = self.mask.to(device)
        return self

    def _check_scene(self, x: torch.Tensor) -> None:
        if x.ndim < 3 or tuple(x.shape[-3:]) != self.shape:
            raise QSCIError(f"scene shape {tuple(x.shape)} does not end with the mask shape {self.shape}")

    def _check_meas(self, y: torch.Tensor) -> None:
        if y.ndim < 2 or tuple(y.shape[-2:]) != self.shape[1:]:
            raise QSCIError(
                f"measurement shape {tuple(y.shape)} does not end with the mask size {self.shape[1:]}"
            )

    def A(self, x: ArrayLike) -> ArrayLike:
        """Forward: (..., T, H, W) -> (..., H, W)."""
        xt = _as_tensor(x)
        self._check_scene(xt)
        return _like((xt * self.mask.to(xt.device)).sum(dim=-3), x)

    def A_adjoint(self, y: ArrayLike) -> ArrayLike:
        """Adjoint: (..., H, W) -> (..., T, H, W)."""
        yt = _as_tensor(y)
        self._check_meas(yt)
        return _like(yt.unsqueeze(-3) * self.mask.to(yt.device), y)

    @property
    def Phi_s(self) -> torch.Tensor:
        """sum_t Phi[t] with zeros replaced by 1 (avoids division by zero), (H, W)."""
        s = self.mask.sum(dim=0)
        return torch.where(s == 0, torch.ones_like(s), s)

    def network_input(self, y: ArrayLike) -> torch.Tensor:
        """EfficientSCI input `x0 = y_n + Phi * y_n`, `y_n = y / Phi_s`: (B, 1, T, H, W)."""
        yt = _as_tensor(y)
        self._check_meas(yt)
        if yt.ndim == 2:
            yt = yt.unsqueeze(0)
        mask = self.mask.to(yt.device)
        y_n = yt / self.Phi_s.to(yt.device)  # (B, H, W)
        x0 = y_n.unsqueeze(1) + mask.unsqueeze(0) * y_n.unsqueeze(1)  # (B, T, H, W)
        return x0.unsqueeze(1)

    def project(self, x: ArrayLike, y: ArrayLike) -> ArrayLike:
        """Euclidean projection onto {x : A x = y}: `x + A^T((y - A x) / sum_t Phi_t^2)`.

        Applied after a network it restores data consistency exactly (pixels that no mask frame
        sees are left as they are). x: (..., T, H, W), y: (..., H, W).
        """
        xt, yt = _as_tensor(x), _as_tensor(y)
        self._check_scene(xt)
        self._check_meas(yt)
        mask = self.mask.to(xt.device)
        energy = (mask * mask).sum(dim=0)
        energy = torch.where(energy == 0, torch.ones_like(energy), energy)
        r = (yt.to(xt.device) - (xt * mask).sum(dim=-3)) / energy  # (..., H, W)
        return _like(xt + r.unsqueeze(-3) * mask, x)

    def adjointness_test(self, seed: int = 0) -> float:
        """<A x, y> - <x, A^T y> for random x, y; ~0 for a correct adjoint."""
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(self.shape, generator=g).to(self.mask.device)
        y = torch.randn(self.shape[1:], generator=g).to(self.mask.device)
        lhs = (self.A(x) * y).sum()
        rhs = (x * self.A_adjoint(y)).sum()
        return float((lhs - rhs) / (lhs.abs() + 1e-12))


def random_binary_mask(t: int, h: int, w: int, seed: int = 0, p: float = 0.5) -> np.ndarray:
    """Seeded Bernoulli(p) mask of shape (T, H, W), float32 in {0, 1}."""
    if min(t, h, w) < 1:
        raise QSCIError(f"mask size must be positive, got {(t, h, w)}")
    rng = np.random.default_rng(seed)
    return (rng.random((t, h, w)) < p).astype(np.float32)


def simulate_measurement(
    x: ArrayLike,
    mask: ArrayLike,
    read_noise_std: float = 0.0,
    shot_noise_photons: float | None = None,
    seed: int = 0,
) -> ArrayLike:
    """`y = A(x)` plus optional noise, reproducible for a given seed.

    `shot_noise_photons`: photon count that an intensity of 1 collects; the snapshot is drawn
    from Poisson(y * photons) / photons. `read_noise_std`: Gaussian noise in intensity units.
    """
    y = _as_tensor(SCIOperator(mask).A(_as_tensor(x)))
    g = torch.Generator().manual_seed(seed)
    if shot_noise_photons is not None:
        if shot_noise_photons <= 0:
            raise QSCIError(f"shot_noise_photons must be positive, got {shot_noise_photons}")
        rate = (y.clamp(min=0) * shot_noise_photons).cpu()
        y = (torch.poisson(rate, generator=g) / shot_noise_photons).to(y.device)
    if read_noise_std > 0:
        y = y + read_noise_std * torch.randn(y.shape, generator=g).to(y.device)
    return _like(y, x)
