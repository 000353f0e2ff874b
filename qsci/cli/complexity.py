"""`python -m qsci complexity --model NAME`: params, MACs, BOPs, size and theoretical speed-up.

By default NAME is described as `python -m qsci models` lists it: for our checkpoints, the model
built from the config stored in the checkpoint file (e.g. per-tensor activation steps); for any
other registered architecture name, its registry preset. `--per-tensor` forces per-tensor steps.
"""

from __future__ import annotations

import argparse

NAME = "complexity"
HELP = "Count parameters, MACs, BOPs and stored size of a model (as `models` lists it) for one input size."


def add_arguments(p: argparse.ArgumentParser) -> None:
    from qsci.cli._common import add_json_argument

    p.add_argument("--model", required=True, help="a name from `qsci models` (our checkpoint's config) or a "
                   "registered architecture, e.g. qsci-s-4bit")
    p.add_argument("--size", default="256x256x8", help="input size HxWxT (default 256x256x8)")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor activation steps")
    add_json_argument(p)
    p.add_argument("--layers", action="store_true", help="include per-layer counts (with --json)")


def model_for(name: str, per_tensor: bool = False):
    """(model, what it is): our checkpoint's stored config when `models` lists one, else the preset."""
    from pathlib import Path

    from qsci import zoo
    from qsci.errors import QSCIError
    from qsci.models import build_model, create_model

    try:
        info = zoo.get_method(name)
    except QSCIError:
        info = None
    if info is not None and info.source == "ours" and info.available and info.checkpoint is not None:
        from qsci.deploy.weights import open_weights

        config = open_weights(info.checkpoint).config or {}
        if config:
            if per_tensor:
                config["per_channel_act"] = False
            return build_model(config), f"the config stored in {Path(info.checkpoint).name}"
    if name == "gap-tv":
        raise QSCIError("gap-tv is a classical solver; complexity counts network models (see `qsci models`)")
    return create_model(name, per_channel_act=False if per_tensor else None), "the registry preset"


def run(args: argparse.Namespace) -> int:
    from qsci.cli._common import emit_json
    from qsci.deploy.complexity import count, parse_size

    size = parse_size(args.size)
    model, what = model_for(args.model, args.per_tensor)
    result = count(model, size)
    if args.json:
        emit_json(result.to_dict(per_layer=args.layers), args.json)
        return 0
    t, h, w = size
    print(f"{args.model} at {h}x{w}x{t} ({what})")
    print(f"  params               {result.params:,}")
    print(f"  MACs                 {result.macs / 1e9:.2f} G")
    print(f"  BOPs                 {result.bops / 1e12:.2f} T")
    print(f"  size                 {result.size_bytes:,} bytes = {result.size_bytes / 1e6:.2f} MB "
          "(b-bit weights, the rest 32-bit; the checkpoint file is larger)")
    print(f"  theoretical speed-up {result.theoretical_speedup:.1f}x (BOPs of fp32 / BOPs)")
    return 0
