"""CPU latency benchmark of one measurement's reconstruction, and the int8 agreement check.

`benchmark(name, backend, ...)` times the runner object the engine and the app use
(`qsci.zoo.load_runner` / `qsci.runners.NetworkRunner`, `make_runner`) on one synthetic
measurement: `runner(meas, mask)`, i.e. network input or initial estimate, the network on the
runner's backend (int8 conversion, channels-last fp32, bf16 autocast: the runner's own set-up),
tiling and any data-consistency step. Warm-up runs, then the median of `repeats` runs, plus the
process's peak resident memory. Models without trained weights run with random weights and
quantizer steps calibrated on one synthetic batch, and the result says so (`"weights": "random"`).
Where the zoo has a checkpoint for the name, that model is timed instead (`"trained"`).
`prepare_backend` (own casts, contiguous or channels-last) is kept for kernel-level comparisons.

Process set-up shared by every backend (so comparisons stay fair): glibc is told to keep freed
memory instead of unmapping it (otherwise every large activation is page-faulted in again, which
cost 5-10x on some layers, see docs/int8.md) and denormals are flushed to zero.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn as nn

from qsci.data import EVAL_SCENES
from qsci.deploy.complexity import parse_size  # noqa: F401  (re-exported: bench sizes parse like complexity sizes)
from qsci.errors import QSCIError
from qsci.runners import GapTVRunner, NetworkRunner, tune_allocator

BACKENDS = ("fp32", "bf16", "int8", "fakequant")
DEFAULT_SIZE = (8, 256, 256)  # (T, H, W)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024


def synthetic_batch(size: tuple[int, int, int], seed: int = 0) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """(x0 (1,1,T,H,W), measurement (H,W), mask (T,H,W)) of a smooth random scene."""
    from qsci.physics import SCIOperator, random_binary_mask

    t, h, w = size
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 1, t, max(h // 16, 1), max(w // 16, 1), generator=g)
    scene = torch.nn.functional.interpolate(coarse, size=(t, h, w), mode="trilinear")[0, 0]
    mask = random_binary_mask(t, h, w, seed=seed)
    op = SCIOperator(mask)
    y = op.A(scene)
    return op.network_input(y), y.numpy(), mask


def is_quantized(model: nn.Module) -> bool:
    from qsci.quant import QConv3d, QLinear

    return any(isinstance(m, (QConv3d, QLinear)) for m in model.modules())


@torch.no_grad()
def calibrate(model: nn.Module, size: tuple[int, int, int] = (8, 32, 32), seed: int = 0) -> nn.Module:
    """Initialise every quantizer step from one synthetic batch (what QAT's first batch does)."""
    model.eval()
    x0, _, _ = synthetic_batch(size, seed)
    model(x0)
    return model


def make_runner(name: str, backend: str, size: tuple[int, int, int], checkpoint: str | None = None):
    """(runner, "trained"|"random"|"file NAME"): the runner object the engine and the app use for `name`.

    Zoo methods with weights come from `qsci.zoo.load_runner` (the engine's cached runner);
    names without trained weights get a `qsci.runners.NetworkRunner` around a calibrated random
    model (`load_for_bench`). Either way the backend set-up (int8 conversion, channels-last,
    bf16 autocast) is the runner's own, so bench and app time the same code.
    """

    if name == "gap-tv":
        return GapTVRunner(), "none"
    from qsci import zoo

    if checkpoint is not None:  # e.g. an authors'-format file: what `reconstruct --checkpoint` runs
        return zoo.load_runner(name, backend, checkpoint), f"file {Path(checkpoint).name}"
    try:
        info = zoo.get_method(name)
    except QSCIError:
        info = None
    if info is not None and info.source != "classical" and info.available:
        return zoo.load_runner(name, backend), "trained"
    model, weights = load_for_bench(name, size)
    return NetworkRunner(name, model, backend=backend, weights=weights), weights


def runner_label(runner) -> str:
    """Backend as timed: int8 / int8-reference / fakequant / fp32-cl / bf16-cl / numpy-fp32."""
    backend = runner.backend
    if backend == "int8":
        from qsci.deploy.int8 import int8_layers

        layers = int8_layers(runner.model)
        return "int8" if layers and layers[0].kernel == "onednn" else "int8-reference"
    return backend + "-cl" if backend in ("fp32", "bf16") else backend


def prepare_backend(model: nn.Module, backend: str, channels_last: bool = False) -> tuple[Callable, str]:
    """(forward(x0) -> (1,T,H,W) float32, backend actually used) for a loaded model."""
    quantized = is_quantized(model)
    model.eval()
    if backend == "int8":
        if not quantized:
            raise QSCIError("int8 needs a quantized model (e.g. qsci-s-4bit); use fp32 or bf16")
        from qsci.deploy.int8 import convert_to_int8, int8_layers

        m8 = convert_to_int8(model)
        kernel = int8_layers(m8)[0].kernel
        used = "int8" if kernel == "onednn" else "int8-reference"
        return (lambda x0: m8(x0)), used
    if quantized and backend == "bf16":
        raise QSCIError("bf16 is for full-precision models; quantized models run int8 or fakequant")
    if not quantized and backend == "fakequant":
        raise QSCIError("fakequant needs a quantized model; use fp32 or bf16")
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    suffix = "-cl" if channels_last else ""
    if backend == "bf16":
        mb = model.to(torch.bfloat16).to(memory_format=fmt)
        return (lambda x0: mb(x0.to(torch.bfloat16).contiguous(memory_format=fmt)).float()), "bf16" + suffix
    if backend not in ("fp32", "fakequant"):
        raise QSCIError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    mf = model.to(memory_format=fmt)
    used = ("fakequant" if quantized else "fp32") + suffix
    return (lambda x0: mf(x0.contiguous(memory_format=fmt))), used


def _trained_model(name: str) -> nn.Module | None:
    """The zoo's trained model for `name`, or None (no zoo, no checkpoint)."""
    try:
        from qsci import zoo
    except ImportError:
        return None
    try:
        info = zoo.get_method(name)
    except QSCIError:
        return None
    if info.source == "classical" or not info.available:
        return None
    runner = zoo.load_runner(name, "fakequant" if info.bits < 32 else "fp32")
    return runner.model


def load_for_bench(name: str, size: tuple[int, int, int]) -> tuple[nn.Module, str]:
    """(model, "trained"|"random"): trained weights when the zoo has them, else calibrated random."""
    model = _trained_model(name)
    if model is not None:
        return model, "trained"
    from qsci.models import create_model, get_config

    cfg = get_config(name)
    model = create_model(name, per_channel_act=False) if cfg.bits < 32 else create_model(name)
    torch.manual_seed(0)
    if cfg.bits < 32:
        calibrate(model, (size[0], min(size[1], 64), min(size[2], 64)))
    return model.eval(), "random"


def time_runs(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds per call for `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def benchmark(name: str, backend: str = "fp32", threads: int = 2, size: tuple[int, int, int] = DEFAULT_SIZE,
              repeats: int = 3, warmup: int = 1, channels_last: bool = False, checkpoint: str | None = None) -> dict:
    """Median latency of one measurement's reconstruction; JSON-ready dict. `checkpoint`: time the
    weights in this file (any format `qsci reconstruct --checkpoint` reads) instead of the zoo's."""
    if backend not in BACKENDS:
        raise QSCIError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if repeats < 1 or threads < 1:
        raise QSCIError("repeats and threads must be at least 1")
    tuned = tune_allocator()  # the runner applies it too; here only to report whether it took
    torch.set_num_threads(threads)
    times, used, weights = _run(name, backend, size, repeats, warmup, channels_last, checkpoint)
    return {"model": name, "backend": used, "median_s": statistics.median(times),
            "times_s": [round(t, 4) for t in times], "peak_rss_mb": round(peak_rss_mb(), 1),
            "weights": weights, "threads": threads, "size": list(size), "allocator_tuned": tuned,
            "timed": "runner(meas, mask): the engine's runner object for one measurement",
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}


def _run(name: str, backend: str, size: tuple[int, int, int], repeats: int, warmup: int,
         channels_last: bool, checkpoint: str | None = None) -> tuple[list[float], str, str]:
    """Time `runner(meas, mask)` for one measurement: what the engine and the app run per method.

    `channels_last` is accepted for compatibility and has no effect: the runner picks the memory
    format (channels-last for fp32/bf16), as it does in the app.
    """
    _x0, y, mask = synthetic_batch(size)
    runner, weights = make_runner(name, backend, size, checkpoint)
    meas = y[None]
    fn = lambda: runner(meas, mask)  # noqa: E731
    return time_runs(fn, repeats, warmup), runner_label(runner), weights


def int8_agreement(model: nn.Module, scenes: Iterable = EVAL_SCENES,
                   max_diff_db: float = 0.1) -> dict:
    """Mean PSNR (vs ground truth) of a fake-quant model and of its int8 conversion on scenes.

    `scenes`: names for `qsci.scenes.load_scene` or SceneInput objects. `ok` is True when the
    mean PSNR of the int8 model is within `max_diff_db` of the fake-quant one (the issue's bar).
    """
    from qsci.deploy.int8 import convert_to_int8
    from qsci.metrics import psnr_frame
    from qsci.physics import SCIOperator
    from qsci.scenes import load_scene

    model = model.eval()
    m8 = convert_to_int8(model)
    per_scene: dict[str, dict] = {}
    with torch.inference_mode():
        for scene in scenes:
            sc = load_scene(scene) if isinstance(scene, str) else scene
            if sc.gt is None:
                raise QSCIError(f"scene {sc.name} has no ground truth; PSNR needs one")
            op = SCIOperator(sc.mask)
            scores: dict[str, list[float]] = {"fakequant": [], "int8": []}
            for y, gt in zip(sc.meas, sc.gt):
                x0 = op.network_input(y)
                for key, net in (("fakequant", model), ("int8", m8)):
                    rec = net(x0)[0].float().numpy()
                    scores[key] += [psnr_frame(g, r) for g, r in zip(gt, rec)]
            per_scene[sc.name] = {k: float(np.mean(v)) for k, v in scores.items()}
    mean_fq = float(np.mean([s["fakequant"] for s in per_scene.values()]))
    mean_i8 = float(np.mean([s["int8"] for s in per_scene.values()]))
    return {"scenes": per_scene, "fakequant_psnr": mean_fq, "int8_psnr": mean_i8,
            "diff_db": mean_i8 - mean_fq, "ok": abs(mean_i8 - mean_fq) <= max_diff_db}


def kernel_microbench(cin: int = 64, cout: int = 64, size: tuple[int, int, int] = (8, 128, 128),
                      threads: int = 2, repeats: int = 5) -> dict[str, float]:
    """Median ms of one 3x3x3 Conv3d on (1, cin, T, H, W) per route (why int8 uses oneDNN ops).

    fp32 / bf16 (plain and channels_last_3d), torch.ao quantized Conv3d per engine (quint8 in
    and out, op only), and the oneDNN u8 x s8 -> fp32 op used by Int8Conv3d (quantize included).
    """
    import warnings

    import torch.ao.nn.quantized as nnq

    from qsci.deploy.int8 import onednn_available, quantize_codes

    tune_allocator()
    torch.set_num_threads(threads)
    cl = torch.channels_last_3d
    x = torch.randn(1, cin, *size)
    conv = nn.Conv3d(cin, cout, 3, padding=1)
    ms = lambda fn: 1000 * statistics.median(time_runs(fn, repeats, 1))  # noqa: E731
    out: dict[str, float] = {}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["fp32"] = ms(lambda: conv(x))
        conv_cl, x_cl = conv.to(memory_format=cl), x.contiguous(memory_format=cl)
        out["fp32-cl"] = ms(lambda: conv_cl(x_cl))
        conv_b, x_b = nn.Conv3d(cin, cout, 3, padding=1).to(torch.bfloat16), x.to(torch.bfloat16)
        out["bf16"] = ms(lambda: conv_b(x_b))
        conv_bc, x_bc = conv_b.to(memory_format=cl), x_b.contiguous(memory_format=cl)
        out["bf16-cl"] = ms(lambda: conv_bc(x_bc))
        w_scale = conv.weight.detach().abs().amax(dim=(1, 2, 3, 4)) / 7  # a 4-bit weight grid
        w_int = (conv.weight.detach() / w_scale[:, None, None, None, None]).round().clamp(-8, 7)
        xq = torch.quantize_per_tensor(x_cl, 0.03, 128, torch.quint8)
        for engine in torch.backends.quantized.supported_engines:
            if engine == "none":
                continue
            torch.backends.quantized.engine = engine
            q = nnq.Conv3d(cin, cout, 3, padding=1)
            wq = torch.quantize_per_channel(w_int * w_scale[:, None, None, None, None], w_scale.double(),
                                            torch.zeros(cout, dtype=torch.long), 0, torch.qint8)
            q.set_weight_bias(wq, conv.bias.detach())
            q.scale, q.zero_point = 0.05, 128
            try:
                out[f"ao-{engine}-cl"] = ms(lambda: q(xq))
            except RuntimeError:
                pass
        if onednn_available():
            ws, zp = w_scale.float(), torch.zeros(cout, dtype=torch.long)
            packed = torch.ops.onednn.qconv_prepack(w_int.to(torch.int8), ws, 0.03, 128, [1] * 3, [1] * 3,
                                                    [1] * 3, 1, None)

            def u8s8():
                u = quantize_codes(x_cl, 0.03, 128, 15)
                return torch.ops.onednn.qconv3d_pointwise(u, 0.03, 128, packed, ws, zp, conv.bias, [1] * 3,
                                                          [1] * 3, [1] * 3, 1, 1.0, 0, torch.float32, "none", [], "")
            out["onednn-u8s8-fp32out-cl (incl. quantize)"] = ms(u8s8)
    return {k: round(v, 2) for k, v in out.items()}
