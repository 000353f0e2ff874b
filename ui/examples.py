"""Two small example uploads for the Upload tab, made by the project itself (`python -m ui.examples`).

Both are embedded clips (`qsci.synthetic`) coded with a seeded random binary mask
(`qsci.scenes.simulate_scene`), so the files are reproducible byte for byte:

- `coins`: 2 measurements of 64×64 at CR 8 with ground truth (scores and error maps);
- `camera`: 1 measurement of 128×128 at CR 8 with its mask only (reconstruction without scores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FOLDER = Path(__file__).resolve().parents[1] / "assets" / "examples"
SPECS = {  # name -> (embedded clip, size, measurements, with ground truth)
    "coins": ("embedded-coins-rotate", 64, 2, True),
    "camera": ("embedded-camera-pan", 128, 1, False),
}
CR = 8
SEED = 0


def make(folder: Path = FOLDER) -> dict[str, list[Path | None]]:
    """Write the example files; returns {name: [measurement, mask, ground truth or None]}."""
    from qsci.io import to_uint8
    from qsci.scenes import simulate_scene
    from qsci.synthetic import make_embedded_scene

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (clip, size, n, with_gt) in SPECS.items():
        frames = make_embedded_scene(clip, n_frames=n * CR, size=size)
        scene = simulate_scene(frames, cr=CR, mask="random", seed=SEED)
        meas, mask = folder / f"{name}_meas.npy", folder / f"{name}_mask.npy"
        np.save(meas, scene.meas.astype(np.float32))
        np.save(mask, scene.mask.astype(np.uint8))  # binary: a quarter of the float32 size
        gt = None
        if with_gt:
            gt = folder / f"{name}_gt.npy"
            np.save(gt, to_uint8(frames))
        out[name] = [meas, mask, gt]
    return out


def listed(folder: Path = FOLDER) -> list[list[str | None]]:
    """`gr.Examples` rows for the files that exist (none when the folder is missing)."""
    rows = []
    for name in SPECS:
        meas, mask, gt = (folder / f"{name}_{part}.npy" for part in ("meas", "mask", "gt"))
        if meas.is_file() and mask.is_file():
            rows.append([str(meas), str(mask), str(gt) if gt.is_file() else None])
    return rows


if __name__ == "__main__":
    for key, paths in make().items():
        print(key, *[p.name for p in paths if p is not None])
