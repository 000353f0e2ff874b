"""Arrays to pictures: what the app shows for one frame, one error map, one mask.

Everything here takes plain numpy arrays in the project's conventions (frames in [0, 1],
`(N, T, H, W)` stacks addressed by one flat frame index) and returns `uint8` images, so the
views can be unit-tested without Gradio and reused by any front end. Pictures become 8-bit
through `qsci.io.writers.to_uint8`, the conversion that the saved files and videos use too.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from qsci.io.writers import to_uint8

#: Absolute errors at or above this value (on the [0, 1] scale) get the hottest colour.
ERROR_VMAX = 0.2


def as_stack(frames: np.ndarray) -> np.ndarray:
    """View `(T, H, W)` or `(N, T, H, W)` frames as one `(N*T, H, W)` sequence."""
    frames = np.asarray(frames)
    if frames.ndim == 2:
        return frames[None]
    if frames.ndim == 3:
        return frames
    if frames.ndim == 4:
        return frames.reshape(-1, *frames.shape[-2:])
    raise ValueError(f"expected 2-D to 4-D frames, got shape {frames.shape}")


def frame_count(frames: np.ndarray) -> int:
    """Number of frames behind the one frame slider."""
    return as_stack(frames).shape[0]


def clamp_index(index: float | int | None, count: int) -> int:
    """Slider values arrive as floats and may be stale after a new run: keep them in range."""
    if count <= 0:
        return 0
    i = 0 if index is None else int(round(float(index)))
    return min(max(i, 0), count - 1)


def frame_at(frames: np.ndarray, index: float | int | None) -> np.ndarray:
    """One `(H, W)` float frame at a flat index (clamped)."""
    stack = as_stack(frames)
    return stack[clamp_index(index, stack.shape[0])]


def frame_image(frames: np.ndarray, index: float | int | None) -> np.ndarray:
    """The displayable 8-bit frame at a flat index."""
    return to_uint8(frame_at(frames, index))


@lru_cache(maxsize=4)
def _colormap_lut(name: str) -> np.ndarray:
    # A 256-entry RGB lookup table; matplotlib is imported only when a map is first drawn.
    import matplotlib

    cmap = matplotlib.colormaps[name]
    return (cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255.0 + 0.5).astype(np.uint8)


def colorize(values: np.ndarray, vmax: float, cmap: str = "inferno") -> np.ndarray:
    """Map non-negative values to RGB with `vmax` as the top of the scale."""
    vmax = float(vmax) if vmax and vmax > 0 else 1.0
    idx = to_uint8(np.asarray(values, dtype=np.float32) / vmax)
    return _colormap_lut(cmap)[idx]


def error_map(ref: np.ndarray, rec: np.ndarray, vmax: float = ERROR_VMAX) -> np.ndarray:
    """RGB absolute-error map |rec - ref| of one frame, fixed scale so methods compare fairly."""
    ref = np.asarray(ref, dtype=np.float32)
    rec = np.asarray(rec, dtype=np.float32)
    if ref.shape != rec.shape:
        raise ValueError(f"reference {ref.shape} and reconstruction {rec.shape} differ in shape")
    return colorize(np.abs(rec - ref), vmax)


def measurement_image(meas: np.ndarray, index: int = 0) -> np.ndarray:
    """One coded measurement scaled by its own maximum (it sums T frames, so it exceeds 1)."""
    meas = np.asarray(meas, dtype=np.float32)
    if meas.ndim == 3:
        meas = meas[clamp_index(index, meas.shape[0])]
    peak = float(np.max(meas)) if meas.size else 0.0
    return to_uint8(meas / peak if peak > 0 else meas)


def mask_mosaic(mask: np.ndarray, max_planes: int = 8, cols: int = 4, gap: int = 4) -> np.ndarray:
    """The first mask planes tiled in a grid with white gaps, each plane scaled to its maximum."""
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim == 2:
        mask = mask[None]
    planes = mask[:max_planes]
    n, h, w = planes.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    out = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap), 255, np.uint8)
    for k, plane in enumerate(planes):
        r, c = divmod(k, cols)
        peak = float(plane.max()) if plane.size else 0.0
        out[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = to_uint8(
            plane / peak if peak > 0 else plane)
    return out


def frame_caption(name: str, psnrs: list[float] | None, ssims: list[float] | None, index: int) -> str:
    """Caption of one gallery tile: method name plus that frame's scores when known."""
    parts = [name]
    if psnrs is not None and 0 <= index < len(psnrs):
        parts.append(f"{psnrs[index]:.2f} dB")
    if ssims is not None and 0 <= index < len(ssims):
        parts.append(f"SSIM {ssims[index]:.3f}")
    return " · ".join(parts)


def side_by_side(
    gt: np.ndarray | None,
    recons: dict[str, np.ndarray],
    index: float | int | None,
    scores: dict[str, tuple[list[float] | None, list[float] | None]] | None = None,
) -> tuple[list[tuple[np.ndarray, str]], list[tuple[np.ndarray, str]]]:
    """Gallery items for one frame: (ground truth + reconstructions, error maps).

    All methods are shown at the same flat frame index; error maps exist only when the
    ground truth is known.
    """
    scores = scores or {}
    counts = [frame_count(f) for f in recons.values()] + ([frame_count(gt)] if gt is not None else [])
    i = clamp_index(index, min(counts) if counts else 0)
    images: list[tuple[np.ndarray, str]] = []
    errors: list[tuple[np.ndarray, str]] = []
    if gt is not None:
        images.append((frame_image(gt, i), f"ground truth · frame {i}"))
    for name, frames in recons.items():
        psnrs, ssims = scores.get(name, (None, None))
        images.append((frame_image(frames, i), frame_caption(name, psnrs, ssims, i)))
        if gt is not None:
            errors.append((error_map(frame_at(gt, i), frame_at(frames, i)), f"|error| {name}"))
    return images, errors
