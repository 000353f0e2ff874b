"""`python -m qsci bench --model NAME --backend fp32|bf16|int8`: CPU latency of one measurement."""

from __future__ import annotations

import argparse

NAME = "bench"
HELP = "Time one measurement's reconstruction on the CPU (median of repeats, peak memory)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registered name (e.g. qsci-s-4bit), a zoo method, or gap-tv")
    p.add_argument("--backend", default="fp32", choices=("fp32", "bf16", "int8", "fakequant"),
                   help="fp32/bf16 for full-precision models, int8 (integer kernels) or fakequant for quantized ones")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--size", default="256x256x8", help="input size HxWxT (default 256x256x8)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs (default 1)")
    p.add_argument("--channels-last", action="store_true", help="fp32/bf16: channels_last_3d memory format")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON to this file ('-' = stdout only)")


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import sys
    from pathlib import Path

    # OpenMP threads that sleep instead of spinning while they wait: on a shared machine a
    # spinning team waits for descheduled threads at every op (5-10x slower, docs/int8.md).
    # libgomp reads this when torch loads, so it only takes effect if torch is not loaded yet.
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from qsci.bench import benchmark, parse_size

    result = benchmark(args.model, args.backend, threads=args.threads, size=parse_size(args.size),
                       repeats=args.repeats, warmup=args.warmup, channels_last=args.channels_last)
    text = json.dumps(result, indent=2)
    if args.json and args.json != "-":
        Path(args.json).write_text(text + "\n")
    if args.json == "-":
        print(text)
        return 0
    t, h, w = result["size"]
    print(f"{result['model']} [{result['backend']}, {result['weights']} weights] {h}x{w}x{t}, "
          f"{result['threads']} threads: median {result['median_s']:.3f} s "
          f"(runs {', '.join(f'{s:.3f}' for s in result['times_s'])}), peak RSS {result['peak_rss_mb']:.0f} MB")
    return 0
