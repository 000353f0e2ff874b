"""`python -m qsci`: one sub-command per module in this package.

Each command module defines `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`,
and imports heavy dependencies inside `run` so that `--help` stays fast. User errors
(`QSCIError`) end as one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from qsci.errors import QSCIError
from qsci.threads import prefer_passive_omp_threads

COMMAND_MODULES = (
    "scenes", "models", "fetch", "evaluate", "reconstruct",
    "load_check", "complexity", "bench", "plot",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qsci", description="Q-SCI studio: low-bit video SCI reconstruction.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"qsci.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"qsci.cli.{module_name}":
                continue  # command not built yet
            raise
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    prefer_passive_omp_threads()  # before any command loads torch
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except QSCIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `python -m qsci models | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("QSCI_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set QSCI_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1
