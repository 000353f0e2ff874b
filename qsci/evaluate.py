"""The benchmark protocol (spec sections 2-3) behind `python -m qsci evaluate`.

Each scene's ground truth is cut into groups of T consecutive frames, re-simulated with the
evaluation mask (the stored `meas` is ignored), reconstructed through the engine and scored
per frame; a scene's score is the mean over its frames, the headline the mean over scenes. The
method is a name, a runner or a network in memory (`qsci.engine.as_runner`), so training scores
its model by the same code as the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from qsci.data import BENCHMARK_SCENES, EVAL_SCENES
from qsci.engine import Method, as_runner, reconstruct
from qsci.scenes import simulate_scene
from qsci.synthetic import EMBEDDED_SCENES, make_embedded_scene

# Held-out scenes for choosing between training stages, so that the benchmark scenes stay a
# test set: the deterministic embedded clips (16 frames, 256x256), simulated with the same mask.
VALIDATION_SCENES = tuple(EMBEDDED_SCENES)


def evaluate(
    method: Method,
    scenes: tuple[str, ...] | list[str] = EVAL_SCENES,
    mask: str | np.ndarray = "quantized_sci",
    backend: str = "auto",
    checkpoint: str | Path | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> dict:
    """Per-scene and mean PSNR/SSIM plus seconds per measurement, as a JSON-ready dict."""
    from qsci import data
    from qsci.errors import QSCIError

    runner = None  # loaded (or wrapped) once, after the first scene is known to be good
    name = method if isinstance(method, str) else None
    per_scene: dict[str, dict] = {}
    backend_used = None
    for i, scene in enumerate(scenes):
        if scene in EMBEDDED_SCENES:
            sim = simulate_scene(make_embedded_scene(scene), cr=8, mask=mask, name=scene, kind="embedded")
        elif scene in BENCHMARK_SCENES:
            orig, own_mask = data.load_benchmark(scene)  # (F, H, W), (8, H, W)
            sim = simulate_scene(orig, cr=own_mask.shape[0], mask=mask, name=scene, kind="benchmark")
        else:
            raise QSCIError(f"unknown scene {scene!r}; choose from {', '.join(BENCHMARK_SCENES)} "
                            f"or the embedded validation clips {', '.join(EMBEDDED_SCENES)}")
        if runner is None:
            runner = as_runner(method, backend, checkpoint)
            name = name or runner.name
        if progress:
            progress(i / len(scenes), f"{name} on {scene}")
        res = reconstruct(sim.meas, sim.mask, runner, gt=sim.gt)
        backend_used = res.backend
        per_scene[scene] = {
            "psnr": round(res.psnr_mean, 4),
            "ssim": round(res.ssim_mean, 5),
            "seconds_per_measurement": round(res.seconds_per_measurement, 4),
        }
    mean = {
        "psnr": round(float(np.mean([s["psnr"] for s in per_scene.values()])), 4),
        "ssim": round(float(np.mean([s["ssim"] for s in per_scene.values()])), 5),
    }
    mask_name = mask if isinstance(mask, str) else "array"
    return {"model": name, "backend": backend_used, "mask": mask_name, "scenes": per_scene, "mean": mean}
