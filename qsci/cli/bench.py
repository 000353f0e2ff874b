"""`python -m qsci bench --model NAME --backend fp32|bf16|int8`: CPU latency of one measurement."""

from __future__ import annotations

import argparse

NAME = "bench"
HELP = "Time one measurement's reconstruction on the CPU (median of repeats, peak memory)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    from qsci.cli._common import add_json_argument

    p.add_argument("--model", required=True, help="registered name (e.g. qsci-s-4bit), a zoo method, or gap-tv")
    p.add_argument("--backend", default="auto", choices=("auto", "fp32", "bf16", "int8", "fakequant"),
                   help="auto (default): what the engine runs for this model (int8 kernels for per-tensor quantized "
                        "models, channels-last fp32 for full precision); or fp32/bf16 for full-precision models, "
                        "int8 (integer kernels) or fakequant for quantized ones")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--size", default="256x256x8", help="input size HxWxT (default 256x256x8)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs (default 1)")
    p.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="time the weights in this file (e.g. an authors' .pth for --model qsci-s-4bit) instead of the zoo's")
    p.add_argument("--channels-last", action="store_true",
                   help="fp32/bf16: channels_last_3d memory format (on by default with --backend auto)")
    add_json_argument(p)


def default_backend(model: str, backend: str, size, channels_last: bool) -> tuple[str, bool]:
    """(backend, channels_last) to time: for "auto", what the engine runs for this model.

    The engine asks `qsci.runners.resolve_backend(model, "auto")` (int8 kernels for per-tensor
    quantized models) and runs full precision in channels-last order, so the default times the same.
    """
    if backend != "auto":
        return backend, channels_last
    if model == "gap-tv":
        return "fp32", channels_last  # numpy; the backend does not apply
    from qsci.bench import load_for_bench
    from qsci.runners import resolve_backend

    net, _weights = load_for_bench(model, size)
    chosen = resolve_backend(net, "auto")
    return chosen, channels_last or chosen in ("fp32", "bf16")


def run(args: argparse.Namespace) -> int:
    from qsci.bench import benchmark, parse_size
    from qsci.cli._common import emit_json

    size = parse_size(args.size)
    backend, channels_last = default_backend(args.model, args.backend, size, args.channels_last)
    result = benchmark(args.model, backend, threads=args.threads, size=size, repeats=args.repeats,
                       warmup=args.warmup, channels_last=channels_last, checkpoint=args.checkpoint)
    result["backend_chosen_by"] = "engine default (--backend auto)" if args.backend == "auto" else "--backend"
    if args.json:
        emit_json(result, args.json)
        return 0
    t, h, w = result["size"]
    print(f"timed backend: {result['backend']} ({result['backend_chosen_by']})")
    print(f"{result['model']} [{result['backend']}, {result['weights']} weights] {h}x{w}x{t}, "
          f"{result['threads']} threads: median {result['median_s']:.3f} s "
          f"(runs {', '.join(f'{s:.3f}' for s in result['times_s'])}), peak RSS {result['peak_rss_mb']:.0f} MB")
    return 0
