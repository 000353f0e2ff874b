"""`python -m qsci complexity --model NAME`: params, MACs, BOPs, size and theoretical speed-up."""

from __future__ import annotations

import argparse

NAME = "complexity"
HELP = "Count parameters, MACs, BOPs and stored size of a registered model for one input size."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registered name, e.g. qsci-s-4bit (see `models`)")
    p.add_argument("--size", default="256x256x8", help="input size HxWxT (default 256x256x8)")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor activation steps")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--layers", action="store_true", help="include per-layer counts (with --json)")


def run(args: argparse.Namespace) -> int:
    import json

    from qsci.models import create_model
    from qsci.quant.complexity import count, parse_size

    size = parse_size(args.size)
    model = create_model(args.model, per_channel_act=False if args.per_tensor else None)
    result = count(model, size)
    if args.json:
        print(json.dumps(result.to_dict(per_layer=args.layers), indent=2))
        return 0
    t, h, w = size
    print(f"{args.model} at {h}x{w}x{t}")
    print(f"  params               {result.params:,}")
    print(f"  MACs                 {result.macs / 1e9:.2f} G")
    print(f"  BOPs                 {result.bops / 1e12:.2f} T")
    print(f"  size                 {result.size_bytes / 2**20:.2f} MiB")
    print(f"  theoretical speed-up {result.theoretical_speedup:.1f}x (BOPs of fp32 / BOPs)")
    return 0
