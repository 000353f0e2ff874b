"""Relative speed of backends measured in ONE process, alternating, on the engine's runners.

On a shared machine the load changes from minute to minute, so backends timed in separate
processes (or one after the other) are not comparable. Here every round times each runner once,
in turn, and the report gives per-backend medians over the rounds (wall time, and the
process CPU time, which under load tracks the work done better than wall time: OpenMP
threads wait passively) plus the ratio of int8 to the
faster floating-point runner within each round (its median is the figure to quote), with the
load average (`/proc/loadavg`) before and after.

    python -m scripts.speedcheck --preset t --threads 2 --size 256x256x8 --rounds 5
    python -m scripts.speedcheck --preset s --bits 4 --rounds 3 --profile int8
    python -m scripts.speedcheck --threads 1 --family gap --backends fp32,bf16,int8,int8-unfused

`int8-unfused` is the same int8 model converted with `convert_to_int8(fuse=False)` (one wrapper
per layer, the path before the fused graph): the in-process before/after of the fusion.
`int8-eager` is the engine's int8 runner with the compiled C kernels switched off
(`qsci.deploy.int8.native`): the in-process before/after of those. `int8-fp32mids` is that runner
with the kernels feeding the C passes writing fp32 instead of bf16 (`native.set_bf16_mids`).

Runners come from `qsci.bench.make_runner` (trained zoo weights where they exist, else calibrated
random weights: timing does not depend on the values). Output: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from qsci.threads import prefer_passive_omp_threads


ENGINE_INT8 = ("int8-eager", "int8-fp32mids")  # the engine's int8 runner with a switch turned off


def _switch(backend: str) -> None:
    """The compiled passes and their bf16 inputs on, except where the backend name turns one off."""
    from qsci.deploy.int8 import native

    native.set_enabled(backend != "int8-eager")
    native.set_bf16_mids(backend != "int8-fp32mids")


def load_average() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def _stages(runner, torch, size: tuple[int, int, int]) -> dict:
    """Process CPU ms of one network call of `runner` split by stage (forward hooks; median of 3):
    encoder, the ResDNet blocks, their CFormers, the attention inside them, and the rest."""
    from qsci.bench import synthetic_batch
    from qsci.deploy.int8 import Int8CFormer, Int8TSAB

    model = runner.model
    clock: dict[str, list[float]] = {}
    start: dict[str, float] = {}

    def timed(name: str, module) -> list:
        pre = module.register_forward_pre_hook(lambda *_: start.__setitem__(name, time.process_time()))
        post = module.register_forward_hook(
            lambda *_: clock.setdefault(name, []).append(time.process_time() - start[name]))
        return [pre, post]

    hooks = [h for b in model.resdnet_list for h in timed("resdnet", b)]
    hooks += [h for m in model.modules() if isinstance(m, Int8CFormer) for h in timed("cformer", m)]
    attention = Int8TSAB.forward_tokens

    def forward_tokens(self, *a, **k):
        c0 = time.process_time()
        out = attention(self, *a, **k)
        clock.setdefault("attention", []).append(time.process_time() - c0)
        return out

    x0, _, _ = synthetic_batch(size)
    rounds = []
    Int8TSAB.forward_tokens = forward_tokens
    try:
        with torch.inference_mode():
            for _ in range(3):
                clock.clear()
                c0 = time.process_time()
                enc = model.encode(x0)
                clock["encode"] = [time.process_time() - c0]
                model(x0)
                total = time.process_time() - c0 - clock["encode"][0]
                r = {k: 1000 * sum(v) for k, v in clock.items()}
                r["total (network)"] = 1000 * total
                r["cformer - attention"] = r.get("cformer", 0) - r.get("attention", 0)
                r["resdnet - cformer"] = r.get("resdnet", 0) - r.get("cformer", 0)
                r["up + decode"] = r["total (network)"] - r["encode"] - r.get("resdnet", 0)
                rounds.append(r)
                del enc
    finally:
        Int8TSAB.forward_tokens = attention
        for h in hooks:
            h.remove()
    return {k: round(statistics.median(r[k] for r in rounds), 1) for k in rounds[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.speedcheck")
    ap.add_argument("--preset", default="t")
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", default="256x256x8", help="HxWxT")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--family", default="", help="'gap' for the warm-start models (qsci-t-gap-*)")
    ap.add_argument("--backends", default="fp32,bf16,int8",
                    help="comma list of fp32, bf16, int8, int8-eager, int8-fp32mids, int8-unfused, fakequant")
    ap.add_argument("--profile", default=None, help="after timing, torch.profiler table for this backend")
    ap.add_argument("--stages", action="store_true",
                    help="after timing, process CPU ms per network stage of one int8 call (median of 3)")
    args = ap.parse_args(argv)
    prefer_passive_omp_threads()
    import torch

    from qsci.bench import make_runner, parse_size, runner_label, synthetic_batch, tune_allocator
    from qsci.deploy.int8 import convert_to_int8, native
    from qsci.runners import NetworkRunner

    tune_allocator()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    size = parse_size(args.size)
    _x0, y, mask = synthetic_batch(size)
    meas = y[None]
    runners = {}
    family = f"{args.family}-" if args.family else ""
    for b in args.backends.split(","):
        quantized = b in ("int8", *ENGINE_INT8, "int8-unfused", "fakequant")
        name = f"qsci-{args.preset}-{family}" + (f"{args.bits}bit" if quantized else "fp32")
        if b == "int8-unfused":  # a separate runner: the engine's cached int8 runner stays fused
            fq, weights = make_runner(name, "fakequant", size)
            runner = NetworkRunner(name, fq.model, backend="int8", weights=weights)
            runner.model = convert_to_int8(fq.model, fuse=False)
        else:
            runner, weights = make_runner(name, "int8" if b in ENGINE_INT8 else b, size)
        _switch(b)
        runner(meas, mask)  # warm-up: first-call costs (weight packing, allocator) not timed
        runners[b] = (name, runner, weights)
    load_before = load_average()
    times: dict[str, list[float]] = {b: [] for b in runners}
    cpu: dict[str, list[float]] = {b: [] for b in runners}
    for _ in range(args.rounds):
        for b, (_name, runner, _w) in runners.items():
            _switch(b)
            c0, t0 = time.process_time(), time.perf_counter()
            runner(meas, mask)
            times[b].append(time.perf_counter() - t0)
            cpu[b].append(time.process_time() - c0)
    report = {
        "size": list(size), "threads": args.threads, "rounds": args.rounds,
        "loadavg_before": load_before, "loadavg_after": load_average(),
        "runners": {b: {"model": n, "backend": runner_label(r), "weights": w,
                        "median_s": round(statistics.median(times[b]), 4),
                        "times_s": [round(t, 4) for t in times[b]],
                        "cpu_s_median": round(statistics.median(cpu[b]), 4),
                        "cpu_s": [round(c, 4) for c in cpu[b]]} for b, (n, r, w) in runners.items()},
    }
    floats = [b for b in ("fp32", "bf16") if b in times]
    _switch("int8")
    for i8 in ("int8", *ENGINE_INT8, "int8-unfused"):
        if i8 not in times or not floats:
            continue
        for what, series in (("", times), ("_cpu", cpu)):
            per_round = [min(series[f][i] for f in floats) / series[i8][i] for i in range(args.rounds)]
            report[f"{i8}{what}_speedup_vs_best_float_per_round"] = [round(r, 3) for r in per_round]
            report[f"{i8}{what}_speedup_vs_best_float_median"] = round(statistics.median(per_round), 3)
    print(json.dumps(report, indent=1), flush=True)
    if args.stages and "int8" in runners:
        stages = _stages(runners["int8"][1], torch, size)
        print(json.dumps({"int8_stage_cpu_ms": stages, "loadavg": load_average()}), flush=True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        _n, runner, _w = runners[args.profile]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            runner(meas, mask)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    return 0


if __name__ == "__main__":
    sys.exit(main())
