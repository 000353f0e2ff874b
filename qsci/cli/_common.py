"""Small helpers shared by the command modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path



def emit_json(obj, out: str | None) -> None:
    """Print JSON to stdout, and also write it to `out` when given."""
    text = json.dumps(obj, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n")


def stderr_progress(fraction: float, message: str) -> None:
    """A one-line progress display on a terminal's stderr (off stdout so JSON stays clean; silent in pipes)."""
    if not sys.stderr.isatty():
        return
    sys.stderr.write(f"\r[{fraction * 100:5.1f}%] {message[:70]:<70}")
    if fraction >= 1.0:
        sys.stderr.write("\n")
    sys.stderr.flush()
