"""Small helpers shared by the command modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path


JSON_HELP = "print JSON instead of text; with FILE, also write it to FILE (the same for every command)"


def add_json_argument(p) -> None:
    """The one --json convention: `--json` prints JSON on stdout, `--json FILE` also writes FILE."""
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE", help=JSON_HELP)


def emit_json(obj, out: str | None) -> None:
    """Print JSON to stdout, and also write it to `out` when given (not for None or '-')."""
    text = json.dumps(obj, indent=2)
    print(text)
    if out and out != "-":
        Path(out).write_text(text + "\n")


def print_table(headers: list[str], rows: list[list], widths: list[int] | None = None) -> None:
    """Plain text table with a header line; the last column is left unpadded."""
    widths = widths or [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    for row in [headers, *rows]:
        cells = [f"{str(c):{w}s}" for c, w in zip(row[:-1], widths)] + [str(row[-1])]
        print("  ".join(cells).rstrip())


def stderr_progress(fraction: float, message: str) -> None:
    """A one-line progress display on a terminal's stderr (off stdout so JSON stays clean; silent in pipes)."""
    if not sys.stderr.isatty():
        return
    sys.stderr.write(f"\r[{fraction * 100:5.1f}%] {message[:70]:<70}")
    if fraction >= 1.0:
        sys.stderr.write("\n")
    sys.stderr.flush()
