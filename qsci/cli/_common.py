"""Small helpers shared by the command modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from qsci.errors import QSCIError


def emit_json(obj, out: str | None) -> None:
    """Print JSON to stdout, and also write it to `out` when given."""
    text = json.dumps(obj, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n")


def parse_size(text: str) -> tuple[int, int, int]:
    """'256x256x8' (H x W x T) -> (T, H, W)."""
    try:
        h, w, t = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise QSCIError(f"size must look like 256x256x8 (H x W x T), got {text!r}") from None
    if min(h, w, t) < 1:
        raise QSCIError(f"size must be positive, got {text!r}")
    return t, h, w


def stderr_progress(fraction: float, message: str) -> None:
    """A one-line progress display on a terminal's stderr (off stdout so JSON stays clean; silent in pipes)."""
    if not sys.stderr.isatty():
        return
    sys.stderr.write(f"\r[{fraction * 100:5.1f}%] {message[:70]:<70}")
    if fraction >= 1.0:
        sys.stderr.write("\n")
    sys.stderr.flush()
