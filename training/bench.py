"""Training throughput: samples/s of full training steps, timed on `training.train.train_step`.

The step timed is the one training runs (forward, loss, backward, gradient-norm clipping, the
configured optimizer), so the numbers follow any change to it.

    python -m training.bench --preset t --crop 128 [--batch 4 --steps 10 --device cpu|cuda
                             --bits 32 --threads 2 --family gap --channels-last --data]

The model step is timed on batches prepared in advance (what a GPU sees when the loader keeps
up); `--data` also times the data pipeline alone (clips, masks and measurements per second per
worker), so the two numbers show whether the loader can feed the model.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch

from training.config import TrainConfig
from training.data import ClipDataset
from training.train import make_optimizer, train_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_model(cfg: TrainConfig, steps: int, warmup: int, device: torch.device, amp: bool,
                channels_last: bool = False) -> dict:
    from qsci.models import create_model

    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as in training: fixed shapes, autotuned kernels
    model = create_model(cfg.model_name, **cfg.model_overrides).to(device).train()
    opt = make_optimizer(model, cfg)
    ds = ClipDataset(cfg)
    pairs = [ds[i] for i in range(cfg.batch)]
    x0 = torch.stack([p[0] for p in pairs]).to(device)  # (B, 1, T, H, W)
    x = torch.stack([p[1] for p in pairs]).to(device)  # (B, T, H, W)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        x0 = x0.contiguous(memory_format=torch.channels_last_3d)
    ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else nullcontext
    times, cpu = [], []
    for i in range(warmup + steps):
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        train_step(model, opt, (x0, x), cfg, cfg.lr, ctx)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    times.sort()
    median = times[len(times) // 2]
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"model": cfg.model_name, "crop": cfg.crop, "batch": cfg.batch, "device": str(device),
            "amp_bf16": amp, "channels_last": channels_last, "threads": torch.get_num_threads(), "step_s_median": median,
            "samples_per_s": cfg.batch / median, "peak_mem_mib": peak,
            # CPU seconds the step consumed: on a shared machine, threads / this is roughly the
            # step rate the same threads would reach uncontended
            "cpu_s_per_step": sorted(cpu)[len(cpu) // 2]}


def bench_data(cfg: TrainConfig, n: int, init: tuple[str, int] = ("measurement", 40)) -> dict:
    ds = ClipDataset(cfg, init=init)
    ds[0]  # load the sources once (video decoding), as a persistent worker does
    t, c = time.perf_counter(), time.process_time()
    for i in range(1, n + 1):
        ds[i]
    per = (time.perf_counter() - t) / n
    return {"data": cfg.data, "crop": cfg.crop, "init": init[0], "samples_per_s_per_worker": 1.0 / per,
            "cpu_ms_per_sample": 1000.0 * (time.process_time() - c) / n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.bench", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="t", help="model size: t | s | b")
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--family", default="", help="'' = the paper's network, gap = the warm-start family")
    p.add_argument("--channels-last", action="store_true", help="channels-last 3-D memory layout")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "off"),
                   help="bf16 autocast (auto: on CUDA only)")
    p.add_argument("--data", action="store_true", help="also time the data pipeline")
    p.add_argument("--source", default="builtin", help="data source for --data (builtin | images | DAVIS path)")
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    use_cuda = torch.cuda.is_available() if args.device == "auto" else args.device == "cuda"
    device = torch.device("cuda" if use_cuda else "cpu")
    amp = args.amp == "bf16" or (args.amp == "auto" and device.type == "cuda")
    cfg = TrainConfig(model_preset=args.preset, family=args.family, bits=args.bits, crop=args.crop,
                      batch=args.batch, data="images").validate()
    r = bench_model(cfg, args.steps, args.warmup, device, amp, args.channels_last)
    mem = f", peak {r['peak_mem_mib']:.0f} MiB" if r["peak_mem_mib"] is not None else \
        f", {r['cpu_s_per_step']:.1f} CPU-s per step"
    print(f"{r['model']} crop {r['crop']} batch {r['batch']} on {r['device']} "
          f"({'bf16' if amp else 'fp32'}{', channels-last' if args.channels_last else ''}, {r['threads']} threads): {r['samples_per_s']:.2f} samples/s "
          f"(median step {r['step_s_median']:.3f} s{mem})")
    if args.data:
        init = ("gaptv", 40) if args.family == "gap" else ("measurement", 40)
        d = bench_data(TrainConfig(data=args.source, crop=args.crop, motion=0.3).validate(), n=4 * args.batch,
                       init=init)
        print(f"data '{d['data']}' crop {d['crop']} init {d['init']}: {d['samples_per_s_per_worker']:.1f} samples/s per worker "
              f"({d['cpu_ms_per_sample']:.1f} CPU-ms per sample)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
