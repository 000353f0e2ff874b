"""The estimate a network starts from: the paper's normalized measurement, or GAP-TV.

Why a choice: end-to-end training from `y / Phi_s` needs 10^5-10^6 samples before it beats the
classical baseline; starting from a short GAP-TV run (plus a global residual in the network)
makes the network a learned correction of GAP-TV, which is at the baseline from the first step
and trainable on a CPU. Both kinds return the network input `(B, 1, T, H, W)`.
"""

from __future__ import annotations

import numpy as np
import torch

from qsci.errors import QSCIError
from qsci.physics import SCIOperator
from qsci.solvers.gaptv import gap_tv


def initial_estimate(y, mask, kind: str = "measurement", iters: int = 40, threads: int = 1) -> torch.Tensor:
    """y (H, W) | (B, H, W), mask (T, H, W) -> network input (B, 1, T, H, W), float32.

    `measurement`: `y_n + Phi * y_n` with `y_n = y / Phi_s` (spec 4). `gaptv`: `iters`
    iterations of GAP-TV with its default weights (deterministic, whatever `threads`; 0.05-0.06 s per
    256x256x8 measurement at 40 iterations on one core compiled, 0.39 s in numpy).
    """
    if kind == "measurement":
        return SCIOperator(mask).network_input(y)
    if kind != "gaptv":
        raise QSCIError(f"unknown initial estimate {kind!r}; choose measurement or gaptv")
    y_np = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y, np.float32)
    m_np = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask, np.float32)
    x = gap_tv(y_np.reshape(-1, *y_np.shape[-2:]), m_np, iters=int(iters), threads=threads)  # (B, T, H, W)
    return torch.from_numpy(np.ascontiguousarray(x, np.float32)).unsqueeze(1)
