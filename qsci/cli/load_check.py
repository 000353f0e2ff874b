"""`python -m qsci load-check FILE`: does a checkpoint load strictly into its model?"""

from __future__ import annotations

import argparse

NAME = "load-check"
HELP = "Check that a checkpoint (the authors' or ours) loads strictly; prints JSON."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a .pth file")
    p.add_argument("--bits", type=int, choices=(2, 3, 4, 8), default=None,
                   help="bit width of a Q-SCI file when the name does not say it")


def run(args: argparse.Namespace) -> int:
    import json

    from qsci.models.checkpoints import load_check

    report = load_check(args.path, bits=args.bits)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1
