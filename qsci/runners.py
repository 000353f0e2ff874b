"""Runners: one loaded method, ready to turn measurements into frames.

A network runner owns the model in the form its backend needs (fp32, bf16, fake-quant or
int8 kernels) and does per-measurement batching and spatial tiling; the GAP-TV runner wraps
the iterative solver. Both take `(meas (N,H,W), mask (T,H,W), progress)` and return
`(N,T,H,W)` float32.
"""

from __future__ import annotations

import ctypes
from typing import Callable

import numpy as np
import torch

from qsci.deploy.int8 import convert_to_int8
from qsci.errors import QSCIError
from qsci.physics import SCIOperator
from qsci.solvers import gaptv_native
from qsci.solvers.gaptv import gap_tv
from qsci.solvers.initial import initial_estimate
from qsci.tiling import count_tiles, run_tiled, tile_size_for

Progress = Callable[[float, str], None] | None

BACKENDS = ("auto", "fp32", "bf16", "fakequant", "int8")


def tune_allocator() -> bool:
    """Keep freed heap memory for reuse (glibc mallopt: no mmap, no trim, one arena); True if applied.

    Every layer frees and re-allocates activations of megabytes. By default glibc hands such
    blocks back to the OS and the next layer page-faults them in again: for a 256x256x8 int8
    reconstruction that was 1.5 M page faults and 1.6x the CPU time (2.56 vs 1.56 CPU-s, one
    thread, /tmp probe of 2026-12-02). `qsci bench` always did this and the app did not, which is
    why the app's seconds were about twice the benchmark's; now every network runner does it
    (idempotent, once per process).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max, m_arena_max = -1, -4, -8
        return all(libc.mallopt(opt, val) == 1
                   for opt, val in ((m_mmap_max, 0), (m_trim_threshold, 2**30), (m_arena_max, 1)))
    except (OSError, AttributeError):  # not glibc
        return False


def _model_bits(model: torch.nn.Module) -> int:
    return int(getattr(getattr(model, "config", None), "bits", 32))


def resolve_backend(model: torch.nn.Module, backend: str) -> str:
    """The backend a model actually runs on; integer kernels by default for quantized models."""
    if backend not in BACKENDS:
        raise QSCIError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    quantized = _model_bits(model) < 32
    if backend == "auto":
        if not quantized:
            return "fp32"
        # per-channel activation steps (the authors' files) run too: folded into the weights
        # (qsci.deploy.int8.fold.fold_per_channel)
        return "fakequant" if torch.cuda.is_available() else "int8"
    if quantized and backend in ("fp32", "bf16"):
        raise QSCIError(f"backend {backend} is for full-precision models; use int8 or fakequant")
    if not quantized and backend in ("int8", "fakequant"):
        raise QSCIError(f"backend {backend} needs a quantized model; use fp32 or bf16")
    return backend


class NetworkRunner:
    kind = "network"

    def __init__(self, name: str, model: torch.nn.Module, backend: str = "auto", weights: str = "trained"):
        self.name = name
        self.weights = weights
        self.backend = resolve_backend(model, backend)
        tune_allocator()
        cfg = getattr(model, "config", None)
        self.init = (getattr(cfg, "init", "measurement"), getattr(cfg, "init_iters", 40))
        self.dc = bool(getattr(cfg, "dc", False))
        model.eval()
        if self.backend == "int8":
            model = convert_to_int8(model)
        elif self.backend in ("fp32", "bf16"):
            # oneDNN runs 3-D convolutions 2-4x faster in channels-last order (docs/int8.md)
            model = model.to(memory_format=torch.channels_last_3d)
        self.model = model
        self._prepared: set[tuple[int, int, int]] = set()

    def prepare(self, mask_shape: tuple[int, int, int]) -> None:
        """One untimed call per input shape (a zero measurement: initial estimate, network,
        projection), before the engine starts its clock.

        oneDNN packs weights and builds its kernels on the first call at each shape: on the idle
        2-core machine the app's first measurement took 1.24x (int8 4-bit) and 2.26x (fp32) the
        steady-state time that `qsci bench` reports (python -m scripts.app_vs_bench, 2026-12-02).
        The whole call, not the network alone: the first GAP-TV call's buffers and threads cost too.
        """
        t, h, w = mask_shape
        tile = tile_size_for(t, h, w)
        shape = (t, h, w) if tile is None else (t, min(tile, h), min(tile, w))
        if shape not in self._prepared:
            self(np.zeros((1, *shape[1:]), np.float32), np.ones(shape, np.float32))
            self._prepared.add(shape)

    @torch.inference_mode()
    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        """(1,1,T,H,W) -> (1,T,H,W) on this runner's backend."""
        if self.backend in ("fp32", "bf16"):
            x0 = x0.contiguous(memory_format=torch.channels_last_3d)
        if self.backend == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self.model(x0).float()
        return self.model(x0).float()

    def __call__(self, meas: np.ndarray, mask: np.ndarray, progress: Progress = None) -> np.ndarray:
        op = SCIOperator(mask)
        t, h, w = op.shape
        if h % 2 or w % 2:
            raise QSCIError(f"networks need an even height and width, got {h}x{w}")
        tile = tile_size_for(t, h, w)
        frames = np.empty((meas.shape[0], t, h, w), np.float32)
        steps = _MeasurementSteps(progress, self.name, len(meas),
                                  len(self.model.progress_blocks()) * count_tiles(h, w, tile))
        hooks = [b.register_forward_hook(steps.block_done) for b in self.model.progress_blocks()] if progress else []
        try:
            for i, y in enumerate(meas):
                steps.start(i, "initial estimate" if self.init[0] == "gaptv" else "network")
                x0 = initial_estimate(y, mask, *self.init, threads=torch.get_num_threads())  # (1,1,T,H,W)
                out = self.forward(x0) if tile is None else run_tiled(self.forward, x0, tile)
                if self.dc:
                    out = op.project(out, torch.from_numpy(np.asarray(y, np.float32)))
                frames[i] = out[0].numpy()
        finally:
            for hook in hooks:
                hook.remove()
        if progress:
            progress(1.0, f"{self.name}: done")
        return frames


class _MeasurementSteps:
    """Moves a progress bar within one measurement, not only between them: the initial estimate
    takes the first tenth, then each network block (per tile) an equal share of the rest.
    A 256x256x8 measurement of an S model on fake-quant takes tens of seconds on 2 cores."""

    ESTIMATE = 0.1

    def __init__(self, progress: Progress, name: str, n_meas: int, blocks_per_measurement: int):
        self.progress, self.name, self.n = progress, name, max(n_meas, 1)
        self.total = max(blocks_per_measurement, 1)
        self.i = self.done = 0

    def start(self, i: int, what: str) -> None:
        self.i, self.done = i, 0
        self._say(0.0, what)

    def block_done(self, *_hook_args) -> None:
        self.done += 1
        self._say(self.ESTIMATE + (1 - self.ESTIMATE) * min(self.done / self.total, 1.0),
                  f"network block {self.done}/{self.total}")

    def _say(self, fraction: float, what: str) -> None:
        if self.progress:
            self.progress((self.i + fraction) / self.n, f"{self.name}: measurement {self.i + 1}/{self.n}, {what}")


class GapTVRunner:
    kind = "classical"
    name = "gap-tv"
    weights = "none"

    @property
    def backend(self) -> str:
        return "c-fp32" if gaptv_native.library() is not None else "numpy-fp32"

    def prepare(self, mask_shape: tuple[int, int, int]) -> None:
        """Builds (or finds cached) the compiled GAP-TV sweeps, so the first timing does not pay for it."""
        gaptv_native.library()

    def __call__(self, meas: np.ndarray, mask: np.ndarray, progress: Progress = None) -> np.ndarray:
        out = gap_tv(meas, mask, progress=progress, threads=torch.get_num_threads())
        return np.asarray(out, np.float32).reshape(meas.shape[0], *mask.shape)
