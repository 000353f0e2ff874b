"""Checks on files, declared shapes and loaded values, each failing with one readable line.

Roles: "measurement" (N, H, W), "mask" (T, H, W), "scene" (F, H, W). The checks on a declared
shape run before any data is read, so oversize files are rejected without loading them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qsci.errors import InputFileError
from qsci.io.limits import DEFAULT_LIMITS, Limits

ROLES = ("measurement", "mask", "scene")
_AXES_WORD = {"measurement": "measurements", "mask": "planes (CR)", "scene": "frames"}


def one_line(text: str, limit: int = 240) -> str:
    """Library messages can span lines or pages; users get one short line."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _mb(n: int) -> str:
    return f"{n} bytes" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def check_file(path: Path, limits: Limits = DEFAULT_LIMITS) -> int:
    """Exists, is a regular non-empty file within the size limit; returns its size in bytes."""
    try:
        if not path.exists():
            raise InputFileError(path, "file not found")
        if not path.is_file():
            raise InputFileError(path, "not a regular file")
        size = path.stat().st_size
    except OSError as exc:
        raise InputFileError(path, f"cannot access file ({exc.strerror or exc})") from None
    if size == 0:
        raise InputFileError(path, "file is empty (0 bytes)")
    if size > limits.max_file_bytes:
        raise InputFileError(path, f"file is {_mb(size)}, more than the {_mb(limits.max_file_bytes)} limit")
    return size


def check_dtype(path: Path | None, dtype: np.dtype, role: str) -> None:
    """Only real numbers and booleans are data; complex, text, objects and records are not."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise InputFileError(path, f"{role} has data type object (pickled Python objects are never loaded)")
    if dtype.kind == "c":
        raise InputFileError(path, f"{role} has complex data type {dtype}; expected real numbers")
    if dtype.kind in "SUa":
        raise InputFileError(path, f"{role} holds text (data type {dtype}); expected numbers")
    if dtype.kind == "V" or dtype.fields is not None:
        raise InputFileError(path, f"{role} has structured data type {dtype}; expected plain numbers")
    if dtype.kind not in "biuf":
        raise InputFileError(path, f"{role} has unsupported data type {dtype}")


def canonical_shape(shape: tuple[int, ...], layout: str) -> tuple[int, int, int] | None:
    """(T, H, W) for a stored shape; layout "HWT" (MATLAB) or "THW" (numpy, image stacks)."""
    if len(shape) == 2:
        return (1, int(shape[0]), int(shape[1]))
    if len(shape) == 3:
        if layout == "HWT":
            return (int(shape[2]), int(shape[0]), int(shape[1]))
        return (int(shape[0]), int(shape[1]), int(shape[2]))
    return None


def check_declared_shape(
    path: Path | None,
    shape: tuple[int, ...],
    role: str,
    layout: str,
    limits: Limits = DEFAULT_LIMITS,
    stack_limit: int | None = None,
) -> tuple[int, int, int]:
    """Rank, emptiness and size limits of a stored shape; returns it as (T, H, W).

    `stack_limit` overrides the limit on the first axis (a mask stack that will be cropped).
    """
    shape = tuple(int(s) for s in shape)
    thw = canonical_shape(shape, layout)
    if thw is None:
        axes = "(H, W) or (H, W, K)" if layout == "HWT" else "(H, W) or (K, H, W)"
        raise InputFileError(path, f"{role} must have 2 or 3 axes {axes}, got {len(shape)} axes with shape {shape}")
    if 0 in shape:
        raise InputFileError(path, f"{role} array is empty (shape {shape})")
    t, h, w = thw
    if h > limits.max_side or w > limits.max_side:
        raise InputFileError(
            path, f"frame size {h}x{w} exceeds the {limits.max_side}x{limits.max_side} limit"
        )
    if stack_limit is None:
        stack_limit = {
            "measurement": limits.max_measurements,
            "mask": limits.max_cr,
            "scene": limits.max_scene_frames,
        }[role]
    if t > stack_limit:
        raise InputFileError(path, f"{role} has {t} {_AXES_WORD[role]}, more than the limit of {stack_limit}")
    if t * h * w > limits.max_elements:
        raise InputFileError(path, f"{role} has {t * h * w} values, more than the limit of {limits.max_elements}")
    return thw


def check_values(path: Path | None, data: np.ndarray, role: str) -> None:
    """Finite, non-negative values; masks within [0, 1] and not all zero."""
    if data.size == 0:
        raise InputFileError(path, f"{role} array is empty (shape {tuple(data.shape)})")
    if data.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise InputFileError(path, f"{role} contains NaN or Inf values ({bad} of {data.size})")
    if data.dtype.kind == "b":
        lo, hi = (0.0, 1.0) if data.any() else (0.0, 0.0)
    else:
        lo, hi = float(data.min()), float(data.max())
    if lo < 0:
        raise InputFileError(path, f"{role} contains negative values (min {lo:g})")
    if role == "mask":
        if hi > 1:
            raise InputFileError(
                path, f"mask values must lie in [0, 1], found range [{lo:g}, {hi:g}] (scale the mask to [0, 1])"
            )
        if hi == 0:
            raise InputFileError(path, "mask is all zeros: nothing would be measured")


def check_pair(meas, mask, meas_path: str | Path | None = None, mask_path: str | Path | None = None) -> None:
    """The measurement's (H, W) must equal the mask's; `meas` may be an array or a Measurement."""
    meas_data = getattr(meas, "data", meas)
    if meas_path is None:
        meas_path = getattr(meas, "path", None)
    meas_shape, mask_shape = tuple(np.shape(meas_data)), tuple(np.shape(mask))
    if len(meas_shape) < 2:
        raise InputFileError(meas_path, f"measurement must have at least 2 axes, got shape {meas_shape}")
    if len(mask_shape) != 3:
        raise InputFileError(mask_path, f"mask must have 3 axes (T, H, W), got shape {mask_shape}")
    if meas_shape[-2:] != mask_shape[-2:]:
        mh, mw = meas_shape[-2:]
        kh, kw = mask_shape[-2:]
        of_mask = f" of {Path(mask_path).name}" if mask_path else ""
        raise InputFileError(
            meas_path, f"measurement size {mh}x{mw} does not match the mask size {kh}x{kw}{of_mask}"
        )
