"""`python -m qsci load-check --checkpoint FILE`: does a checkpoint load strictly into its model?"""

from __future__ import annotations

import argparse

NAME = "load-check"
HELP = ("Check that a checkpoint (the authors' .pth, or ours: packed checkpoints/*.pt, config + state dict, "
        "training state) loads strictly; prints JSON.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from qsci.cli._common import add_json_argument

    p.add_argument("--checkpoint", dest="checkpoint", default=None, metavar="FILE",
                   help="the weights file (the authors' .pth or one of ours)")
    p.add_argument("path", nargs="?", default=None, help="the same file, given positionally")
    p.add_argument("--bits", type=int, choices=(2, 3, 4, 8), default=None,
                   help="bit width of a Q-SCI file when the name does not say it")
    add_json_argument(p)


def _packed_report(wf) -> dict:
    """Report for one of our packed files (checkpoints/*.pt), already read by the weights loader."""
    from qsci.deploy.packing import FORMAT
    from qsci.deploy.weights import load_model
    from qsci.errors import QSCIError

    config = wf.config or {}
    try:
        load_model(wf)  # strict: every entry present with its shape (unpack_into)
    except QSCIError as exc:
        return {"variant": _variant(config), "format": FORMAT, "ok": False, "error": str(exc)}
    return {"variant": _variant(config), "format": FORMAT, "config": config,
            "missing": [], "unexpected": [], "mismatched": [], "ok": True}


def _variant(config: dict) -> str:
    bits = int(config.get("bits", 32))
    return f"qsci-{config.get('preset', '?')}-" + ("fp32" if bits >= 32 else f"{bits}bit")


def run(args: argparse.Namespace) -> int:
    from qsci.cli._common import emit_json
    from qsci.errors import QSCIError

    if args.checkpoint and args.path and args.checkpoint != args.path:
        raise QSCIError("give the checkpoint once (--checkpoint FILE or FILE), not two different files")
    path = args.checkpoint or args.path
    if not path:
        raise QSCIError("name the checkpoint: python -m qsci load-check --checkpoint FILE")
    from qsci.deploy.weights import load_check, open_weights


    wf = open_weights(path)  # read once; every format and every read error goes through here
    report = _packed_report(wf) if wf.kind == "packed" else load_check(wf, bits=args.bits)
    emit_json(report, args.json)
    return 0 if report["ok"] else 1
