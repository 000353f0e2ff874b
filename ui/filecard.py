"""One line per uploaded file, shown as soon as that file arrives (before the pair is complete).

What is shown comes from the `qsci.io` readers (the same ones the reconstruction uses):
the measurement's `Measurement.describe()` (count, size, stored type, detected axis order) plus
its value range; the mask's planes, size and open fraction; the ground truth's frames and size.
The file name is written in full. A file that cannot be read gives its one-line reason.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from qsci.errors import QSCIError


def _range(data: np.ndarray) -> str:
    if not data.size:
        return "empty"
    return f"values {float(np.min(data)):.4g} … {float(np.max(data)):.4g}"


def describe_file(role: str, path: str | None) -> str:
    """Markdown line: "**measurement** `name`: what was read" (or why it could not be read).

    The file is parsed in the upload child process (`qsci.io.isolate`: memory and time limits), so
    a file that crashes a parser gives its one-line reason here and the app keeps serving.
    """
    from qsci.io.isolate import read_upload

    if not path:
        return ""
    name = html.escape(Path(path).name)
    try:
        what = read_upload(path, parser="ui.filecard:read_and_describe", role=role)
    except QSCIError as exc:
        return f"**{role}** `{name}`: ✖ {exc}"
    return f"**{role}** `{name}`: {what}"


def read_and_describe(path: str, role: str) -> str:
    """What `describe_file` shows for one file; runs in the upload child process."""
    from qsci import io

    if role == "measurement":
        m = io.read_measurement(path)
        return f"{m.describe()}, {_range(m.data)}"
    if role == "mask":
        mask = io.read_mask(path)
        t, h, w = mask.shape
        return f"{t} planes (compression ratio {t}) of {h}x{w}, open fraction {float(mask.mean()):.2f}"
    frames = io.read_scene(path)
    return f"{frames.shape[0]} frames of {frames.shape[-2]}x{frames.shape[-1]}, {_range(frames)}"


def upload_summary(meas_path: str | None, mask_path: str | None, gt_path: str | None) -> str:
    """The per-file lines and what is still missing."""
    lines = [describe_file(role, p) for role, p in
             (("measurement", meas_path), ("mask", mask_path), ("ground truth", gt_path)) if p]
    if not meas_path or not mask_path:
        need = "its mask" if meas_path else "the measurement it coded" if mask_path else "a measurement and its mask"
        lines.append(f"Next: upload {need}.")
    return "\n\n".join(lines)
