"""One entry point for every front end: measurement + mask + method -> frames and scores.

The app, the CLI, evaluation and training all call `reconstruct`, so timing, metrics, backend
choice and input checks are the same everywhere. A method is a name (the zoo loads and caches
its runner), a runner, or a network in memory (training scores its model without a file).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from qsci.errors import QSCIError
from qsci.metrics import frame_scores
from qsci.runners import NetworkRunner
from qsci.zoo import load_runner

Progress = Callable[[float, str], None] | None
# a method name, a runner (`runner(meas, mask, progress)` with `.name` and `.backend`), or a network
Method = str | Callable | torch.nn.Module


def as_runner(method: Method, backend: str = "auto", checkpoint: str | Path | None = None):
    """The runner for a method name (cached by the zoo), a runner (as it is) or a network.

    A network is wrapped in a new `NetworkRunner`, which puts it in eval mode and, for fp32/bf16,
    into channels-last order in place: hand over a copy of a model that is still training.
    """
    if isinstance(method, str):
        return load_runner(method, backend, checkpoint)
    if checkpoint is not None:
        raise QSCIError("checkpoint= goes with a method name, not with a runner or a model in memory")
    if isinstance(method, torch.nn.Module):
        config = getattr(method, "config", None)
        return NetworkRunner(getattr(config, "name", type(method).__name__), method, backend=backend)
    if callable(method) and hasattr(method, "backend") and hasattr(method, "name"):
        if backend not in ("auto", method.backend):
            raise QSCIError(f"this {method.name} runner runs on {method.backend}, not {backend}")
        return method
    raise QSCIError(f"a method is a name, a runner or a network, not {type(method).__name__}")


@dataclass
class ReconResult:
    method: str
    frames: np.ndarray  # (N, T, H, W) float32
    seconds: float
    backend: str
    weights: str = "trained"
    psnr: list[float] | None = None  # per frame, flattened over (N, T)
    ssim: list[float] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def psnr_mean(self) -> float | None:
        return None if self.psnr is None else float(np.mean(self.psnr))

    @property
    def ssim_mean(self) -> float | None:
        return None if self.ssim is None else float(np.mean(self.ssim))

    @property
    def seconds_per_measurement(self) -> float:
        return self.seconds / max(1, self.frames.shape[0])

    def summary(self) -> dict:
        return {"psnr": self.psnr_mean, "ssim": self.ssim_mean, "seconds": self.seconds, "backend": self.backend}


def _as_stack(meas: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    meas = np.asarray(meas, np.float32)
    mask = np.asarray(mask, np.float32)
    if mask.ndim != 3:
        raise QSCIError(f"mask must be (T, H, W), got shape {mask.shape}")
    if meas.ndim == 2:
        meas = meas[None]
    if meas.ndim != 3:
        raise QSCIError(f"measurement must be (H, W) or (N, H, W), got shape {meas.shape}")
    if meas.shape[1:] != mask.shape[1:]:
        raise QSCIError(f"measurement size {meas.shape[1:]} does not match mask size {mask.shape[1:]}")
    _check_values(meas, mask)
    return meas, mask


def _check_values(meas: np.ndarray, mask: np.ndarray) -> None:
    """Finite values, a usable mask, and a measurement on the 0..1-frame scale (`qsci.io.inspect`).

    Files are rescaled by the readers' front ends (`qsci.scenes.scene_from_files`, the CLI) with a
    notice; arrays handed to the engine directly must already be on the engine's scale, so a
    0..255-scale measurement is refused here rather than reconstructed into nonsense.
    """
    from qsci.io.inspect import FRAME_SCALE_SLACK, scale_ratio

    for what, arr in (("measurement", meas), ("mask", mask)):
        if not np.isfinite(arr).all():
            raise QSCIError(f"{what} contains NaN or Inf values")
    if float(mask.min()) < 0 or float(mask.max()) > 1:
        raise QSCIError(f"mask values must lie in [0, 1], found [{float(mask.min()):g}, {float(mask.max()):g}]")
    if not mask.any():
        raise QSCIError("mask is all zeros: nothing would be measured")
    r = scale_ratio(meas, mask)
    if r > FRAME_SCALE_SLACK:
        raise QSCIError(
            f"measurement values reach {float(meas.max()):g}, {r:.0f}x the mask's largest per-pixel sum: the engine "
            "needs frames on the 0..1 scale; divide a sum of 8-bit frames by 255 (qsci.io.inspect.scale_measurement "
            "decides and says so)")


def reconstruct(
    meas: np.ndarray,
    mask: np.ndarray,
    method: Method,
    *,
    gt: np.ndarray | None = None,
    backend: str = "auto",
    progress: Progress = None,
    checkpoint: str | Path | None = None,
) -> ReconResult:
    """Reconstruct `meas` (H,W)|(N,H,W) coded with `mask` (T,H,W) by `method` (see `as_runner`);
    score against `gt` if given."""
    meas, mask = _as_stack(meas, mask)
    runner = as_runner(method, backend, checkpoint)
    runner.prepare(mask.shape)  # first-use kernel building is loading, not reconstruction time
    start = time.perf_counter()
    frames = runner(meas, mask, progress)
    seconds = time.perf_counter() - start
    name = method if isinstance(method, str) else runner.name
    result = ReconResult(name, frames, seconds, runner.backend, getattr(runner, "weights", "trained"))
    if gt is not None:
        gt = np.asarray(gt, np.float32)
        if gt.size != frames.size:
            raise QSCIError(f"ground truth shape {gt.shape} does not match the reconstruction {frames.shape}")
        result.psnr, result.ssim = frame_scores(gt.reshape(frames.shape), frames)
    return result
