"""Readers for measurements, masks and ground-truth scenes (axis rules: see `qsci.io.formats`).

All three return float32 arrays with time first; every problem is an `InputFileError` naming the
file. Measurements keep their stored scale unless `real_scaling=True` (spec section 2:
`meas / 255 * CR / 2` for raw 8-bit camera measurements). Scenes are brought to [0, 1].
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from qsci.errors import InputFileError, QSCIError
from qsci.io import formats
from qsci.io.limits import DEFAULT_LIMITS, Limits
from qsci.io.validate import check_file, check_values, one_line

PathLike = str | os.PathLike
Source = PathLike | Sequence[PathLike]


@dataclass
class Measurement:
    """Measurements read from one file, with what was detected (for "CR, size, axis order" displays)."""

    data: np.ndarray  # (N, H, W) float32
    path: str | None
    axis_order: str
    dtype_in: str
    scaled: bool
    key: str | None = None
    cr: int | None = None

    @property
    def count(self) -> int:
        return int(self.data.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.data.shape[1]), int(self.data.shape[2])

    def describe(self) -> str:
        h, w = self.size
        parts = [f"{self.count} measurement{'s' if self.count != 1 else ''} of {h}x{w}", f"stored {self.dtype_in}",
                 f"axes {self.axis_order}"]
        if self.key:
            parts.append(f"key '{self.key}'")
        if self.scaled:
            parts.append(f"scaled /255*CR/2 with CR {self.cr}")
        return ", ".join(parts)


#: Called with (path, role) before a file is parsed; `qsci.io.isolate` uses it in its child process
#: to name the file whose parser crashed. None (the default) costs nothing.
READ_HOOK = None


def _load(source: Source, role: str, limits: Limits, stack_limit: int | None = None) -> tuple[formats.Stack, Path]:
    """Dispatch on what `source` is; any library or OS exception becomes an InputFileError."""
    if READ_HOOK is not None:
        READ_HOOK(source if not isinstance(source, (list, tuple)) else (source[0] if source else "."), role)
    if isinstance(source, (list, tuple)):
        files = [Path(p) for p in source]
        where = files[0].parent if files else Path(".")
        return _guarded(where, lambda ctx: formats.load_image_files(ctx, files), role, limits, stack_limit), where
    path = Path(source)
    try:
        is_dir = path.is_dir()
    except OSError as exc:
        raise InputFileError(path, f"cannot access the path ({exc.strerror or exc})") from None
    if is_dir:
        return _guarded(
            path, lambda ctx: formats.load_image_files(ctx, formats.image_files_in(path)), role, limits, stack_limit
        ), path
    check_file(path, limits)
    ext = path.suffix.lower()
    if ext in formats.MAT_EXTS:
        loader = formats.load_mat
    elif ext == ".npy":
        loader = formats.load_npy
    elif ext == ".npz":
        loader = formats.load_npz
    elif ext in formats.IMAGE_EXTS:
        loader = lambda ctx: formats.load_image_files(ctx, [path])  # noqa: E731
    elif ext in formats.VIDEO_EXTS:
        if role != "scene":
            raise InputFileError(path, f"video files are accepted only for ground-truth scenes, not for a {role}")
        loader = formats.load_video
    else:
        raise InputFileError(
            path,
            f"unsupported file type '{path.suffix}' (use .mat, .npy, .npz, .png, .tif/.tiff, a folder of frames"
            + (", or a video" if role == "scene" else "") + ")",
        )
    return _guarded(path, loader, role, limits, stack_limit), path


def _guarded(path: Path, loader, role: str, limits: Limits, stack_limit: int | None) -> formats.Stack:
    ctx = formats._Ctx(path, role, limits, stack_limit)
    try:
        return loader(ctx)
    except QSCIError:
        raise
    except MemoryError:
        raise InputFileError(path, "not enough memory to load the file") from None
    except Exception as exc:  # never leak a library's own exception type
        raise InputFileError(path, one_line(f"cannot read the file ({type(exc).__name__}: {exc})")) from None


def read_measurement(
    path: Source, cr: int | None = None, *, real_scaling: bool = False, limits: Limits = DEFAULT_LIMITS
) -> Measurement:
    """(N, H, W) float32 measurements; `.mat` (H, W[, K]) and numpy (K, H, W) layouts.

    `cr` is only needed for `real_scaling` (the compression ratio of the mask that was used).
    """
    stack, where = _load(path, "measurement", limits)
    check_values(where, stack.data, "measurement")
    with np.errstate(over="ignore"):
        data = stack.data.astype(np.float32)
    if stack.data.dtype.itemsize > 4 and not np.isfinite(data).all():  # float64 beyond float32's range (fuzzing)
        raise InputFileError(where, f"measurement values exceed the float32 range (max {float(stack.data.max()):g})")
    if real_scaling:
        if cr is None or cr < 1:
            raise InputFileError(where, "real_scaling needs the compression ratio: pass cr (the mask's T)")
        data = data / np.float32(255) * np.float32(cr) / np.float32(2)
    return Measurement(data, str(where), stack.axis_order, stack.dtype_in, bool(real_scaling), stack.key, cr)


def read_mask(path: Source, cr: int | None = None, *, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """(T, H, W) float32 mask with values in [0, 1]; with `cr`, only the first `cr` planes.

    A stack deeper than `limits.max_cr` (a real-camera mask with >= 50 planes) is accepted when
    `cr` selects a supported number of planes.
    """
    if cr is not None and not 1 <= int(cr) <= limits.max_cr:
        raise InputFileError(path if not isinstance(path, (list, tuple)) else None,
                             f"requested CR {cr} is outside 1..{limits.max_cr}")
    stack, where = _load(path, "mask", limits, limits.max_scene_frames if cr is not None else None)
    data = stack.data
    if cr is not None:
        if data.shape[0] < cr:
            raise InputFileError(where, f"mask has {data.shape[0]} planes, fewer than the requested CR {cr}")
        data = data[: int(cr)]
    check_values(where, data, "mask")
    return np.ascontiguousarray(data, dtype=np.float32)


def scene_to_unit_range(data: np.ndarray, where: Path | None) -> np.ndarray:
    """uint8 / 255, uint16 / 65535; floats in [0, 1] as they are, floats on a 0..255 scale / 255."""
    if data.dtype == np.uint8:
        return data.astype(np.float32) / np.float32(255)
    if data.dtype == np.uint16:
        return data.astype(np.float32) / np.float32(65535)
    out = data.astype(np.float32)
    hi = float(out.max()) if out.size else 0.0
    if hi <= 1.0:
        return out
    if hi <= 255.0:  # many MATLAB scene files hold doubles on the 8-bit scale
        return out / np.float32(255)
    raise InputFileError(where, f"scene values must lie in [0, 1] (or 0..255 for 8-bit data), found max {hi:g}")


def read_scene(path: Source, *, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """(F, H, W) float32 ground-truth frames in [0, 1] from any supported file, folder or video."""
    stack, where = _load(path, "scene", limits)
    check_values(where, stack.data, "scene")
    return np.ascontiguousarray(scene_to_unit_range(stack.data, where))
