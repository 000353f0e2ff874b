"""What a measurement + mask pair looks like before anything is reconstructed (numpy only).

One value-scale policy for every front end (app, CLI, HTTP API), `scale_measurement`:

The engine expects frames on the 0..1 scale, so a measurement `y = sum_t mask_t * x_t` can be no
larger than the mask's per-pixel sum `S = sum_t mask_t` (plus noise). The ratio
`r = (99.9th percentile of y) / max(S)` tells the scale apart:

- `r <= 1.5`: frames on 0..1 -> used as they are.
- `1.5 < r <= 260` (at most 255 x S, 2 % slack) and the maximum of `y` above 255: a sum of 8-bit
  frames (the benchmark `.mat` files store `meas` this way) -> divided by 255, with a notice.
- `1.5 < r <= 260` and every value <= 255: ambiguous. A raw 8-bit camera frame (which needs the
  real-camera scaling `meas / 255 * CR / 2`) looks the same as a dark sum of 8-bit frames
  (which needs `/ 255`) -> refused with a message naming both options.
- `r > 260`: beyond what 8-bit frames can sum to -> refused; the user scales the file.

`scale` overrides the detection: "auto" (the policy above), "none" (as stored), "255" (divide
by 255) or "real" (`meas / 255 * CR / 2`, the authors' real-camera scaling).

`input_warnings` lists what is suspicious but still computable: all-zero, constant or mostly
saturated measurements, empty mask planes, and masks whose density (fraction of open pixels) is
far from the 0.5 of the random binary masks the networks are trained on
(`qsci.physics.random_binary_mask`, p = 0.5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qsci.errors import InputFileError

SCALES = ("auto", "none", "255", "real")
FRAME_SCALE_SLACK = 1.5  # r up to this: frames on 0..1 (noise can push y a little above S)
EIGHT_BIT_LIMIT = 255.0 * 1.02  # r up to this: frames on the 0..255 scale
TRAINING_DENSITY = 0.5  # p of qsci.physics.random_binary_mask, which training uses for every sample
DENSITY_LOW, DENSITY_HIGH = 0.2, 0.8  # outside this band: warn that learned models may do poorly
SATURATED_FRACTION = 0.10  # this share of pixels at the maximum value: probably a saturated sensor


def scale_ratio(meas: np.ndarray, mask: np.ndarray) -> float:
    """(99.9th percentile of the measurement) / (largest per-pixel mask sum); 0 for an empty mask."""
    cap = float(np.max(np.sum(mask, axis=0, dtype=np.float64)))
    if cap <= 0:
        return 0.0
    hi = float(np.percentile(meas, 99.9)) if meas.size else 0.0
    return hi / cap


def _integer_valued(meas: np.ndarray) -> bool:
    return bool(np.all(meas == np.round(meas)))


def scale_measurement(
    meas: np.ndarray, mask: np.ndarray, scale: str = "auto", where: str | Path | None = None
) -> tuple[np.ndarray, list[str]]:
    """(measurement on the engine's scale, notices saying what was done and why); see module doc.

    Raises `InputFileError` naming `where` when the scale cannot be told or is out of range.
    """
    scale = str(scale).strip().lower()
    if scale not in SCALES:
        raise InputFileError(where, f"unknown measurement scale {scale!r}; use one of {', '.join(SCALES)}")
    meas = np.asarray(meas, np.float32)
    cr = int(mask.shape[0])
    if scale == "none":
        return meas, []
    if scale == "255":
        return meas / np.float32(255), ["measurement divided by 255 as asked (sum of 8-bit frames)"]
    if scale == "real":
        return (meas / np.float32(255) * np.float32(cr) / np.float32(2),
                [f"real-camera scaling applied as asked: meas / 255 x CR / 2 with CR {cr}"])
    r = scale_ratio(meas, mask)
    if r <= FRAME_SCALE_SLACK:
        return meas, []
    top = float(meas.max())
    cap = float(np.max(np.sum(mask, axis=0, dtype=np.float64)))
    seen = f"measurement values reach {top:g}, {r:.0f}x the mask's largest per-pixel sum {cap:g}"
    if r <= EIGHT_BIT_LIMIT and top > 255:
        what = "a sum of 8-bit frames (0..255)" + (", integer-valued" if _integer_valued(meas) else "")
        return meas / np.float32(255), [
            f"{seen}: this is {what}, so it was divided by 255 to put frames on the 0..1 scale "
            "(--meas-scale none keeps it as stored)"]
    if r <= EIGHT_BIT_LIMIT:
        raise InputFileError(where, (
            f"{seen}, all <= 255: a raw 8-bit camera frame needs the real-camera scaling "
            f"(meas / 255 x CR / 2; CLI --real-scaling, app checkbox), a sum of 8-bit frames needs "
            f"/ 255 (CLI --meas-scale 255); say which"))
    raise InputFileError(where, (
        f"{seen}, more than frames on the 0..255 scale can give; scale the measurement so frames lie in "
        f"0..1 (or pass --meas-scale none to use it as stored)"))


def input_warnings(meas: np.ndarray, mask: np.ndarray) -> list[str]:
    """Suspicious but computable inputs, one short sentence each (empty list: nothing to say)."""
    out = []
    meas = np.asarray(meas)
    mask = np.asarray(mask)
    stack = meas if meas.ndim == 3 else meas[None]
    zero = [i for i, y in enumerate(stack) if not np.any(y)]
    if zero:
        out.append(f"{_which('measurement', zero, len(stack))} all zeros: the reconstruction will be blank")
    for i, y in enumerate(stack):
        if i in zero:
            continue
        lo, hi = float(y.min()), float(y.max())
        if lo == hi:
            out.append(f"measurement {i} is constant ({hi:g} everywhere): it carries no picture")
            continue
        at_top = float(np.mean(y == hi))
        if at_top >= SATURATED_FRACTION:
            out.append(f"measurement {i}: {at_top:.0%} of the pixels sit at the maximum value {hi:g} "
                       "(saturated sensor?); those regions cannot be recovered")
    empty = [t for t, plane in enumerate(mask) if not np.any(plane)]
    if empty:
        out.append(f"{_which('mask plane', empty, len(mask))} empty (all zeros): those frames are never "
                   "measured and cannot be recovered")
    density = float(np.mean(mask)) if mask.size else 0.0
    if not DENSITY_LOW <= density <= DENSITY_HIGH:
        out.append(f"mask density {density:.2f} (mean value) is far from the {TRAINING_DENSITY} of the "
                   f"random masks the networks were trained on; learned models may do poorly (GAP-TV is unaffected)")
    return out


def _which(noun: str, idx: list[int], total: int) -> str:
    """'measurement 0 is', 'measurements 0, 2 are', 'every measurement is', 'the measurement is'."""
    if len(idx) == total:
        return f"the {noun} is" if total == 1 else f"every {noun} is"
    shown = ", ".join(str(i) for i in idx[:8]) + (", ..." if len(idx) > 8 else "")
    return f"{noun} {shown} is" if len(idx) == 1 else f"{noun}s {shown} are"
