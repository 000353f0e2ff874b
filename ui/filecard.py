"""One line per uploaded file, shown as soon as that file arrives (before the pair is complete).

What is shown comes from the `qsci.io` readers (the same ones the reconstruction uses):
the measurement's `Measurement.describe()` (count, size, stored type, detected axis order) plus
its value range; the mask's planes, size and open fraction; the ground truth's frames and size.
The file name is written in full. A file that cannot be read gives its one-line reason.
`inspect_files` reads every file once in one upload child and builds the pair from what it read,
so an inspected upload is parsed once (`ui.handlers.inspect_upload`).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from qsci.errors import QSCIError

ROLES = ("measurement", "mask", "ground truth")


def _range(data: np.ndarray) -> str:
    if not data.size:
        return "empty"
    return f"values {float(np.min(data)):.4g} … {float(np.max(data)):.4g}"


def _line(role: str, path: str, what: str, ok: bool = True) -> str:
    name = html.escape(Path(path).name)
    return f"**{role}** `{name}`: {what}" if ok else f"**{role}** `{name}`: ✖ {what}"


def describe_file(role: str, path: str | None) -> str:
    """Markdown line: "**measurement** `name`: what was read" (or why it could not be read).

    The file is parsed in the upload child process (`qsci.io.isolate`: memory and time limits), so
    a file that crashes a parser gives its one-line reason here and the app keeps serving.
    """
    from qsci.io.isolate import read_upload

    if not path:
        return ""
    try:
        what = read_upload(path, parser="ui.filecard:read_and_describe", role=role)
    except QSCIError as exc:
        return _line(role, path, str(exc), ok=False)
    return _line(role, path, what)


def _read(role: str, path: str):
    """(what the `qsci.io` reader returned, the line that describes it) for one file."""
    from qsci import io

    if role == "measurement":
        m = io.read_measurement(path)
        return m, f"{m.describe()}, {_range(m.data)}"
    if role == "mask":
        mask = io.read_mask(path)
        t, h, w = mask.shape
        return mask, f"{t} planes (compression ratio {t}) of {h}x{w}, open fraction {float(mask.mean()):.2f}"
    frames = io.read_scene(path)
    return frames, f"{frames.shape[0]} frames of {frames.shape[-2]}x{frames.shape[-1]}, {_range(frames)}"


def read_and_describe(path: str, role: str) -> str:
    """What `describe_file` shows for one file; runs in the upload child process."""
    return _read(role, path)[1]


def inspect_files(meas_path: str | None, mask_path: str | None, gt_path: str | None = None):
    """Runs in the upload child: each file read once and described, then the pair built from those reads.

    Returns the pair's `SceneInput` (default options) with `info["files"]` = {role: [ok, line]}, or
    {"files": ..., "error": why the pair cannot be used} (no "error" while a file is still missing).
    """
    from qsci.scenes import scene_from_files

    lines, read = {}, {}
    for role, path in zip(ROLES, (meas_path, mask_path, gt_path)):
        if path:
            try:
                read[role], what = _read(role, path)
                lines[role] = [True, what]
            except QSCIError as exc:
                lines[role] = [False, str(exc)]
    if not (meas_path and mask_path):
        return {"files": lines}
    try:
        scene = scene_from_files(meas_path, mask_path, gt_path, read=read)  # a file that failed is read again
    except QSCIError as exc:
        return {"files": lines, "error": str(exc)}
    scene.info["files"] = lines
    return scene


def upload_summary(meas_path: str | None, mask_path: str | None, gt_path: str | None,
                   described: dict | None = None) -> str:
    """The per-file lines and what is still missing; `described` ({role: [ok, line]}, from
    `inspect_files`) spares a file its own parse."""
    described = described or {}
    lines = []
    for role, path in zip(ROLES, (meas_path, mask_path, gt_path)):
        if path and role in described:
            ok, what = described[role]
            lines.append(_line(role, path, what, ok))
        elif path:
            lines.append(describe_file(role, path))
    if not meas_path or not mask_path:
        need = "its mask" if meas_path else "the measurement it coded" if mask_path else "a measurement and its mask"
        lines.append(f"Next: upload {need}.")
    return "\n\n".join(lines)
