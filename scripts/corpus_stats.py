"""Motion statistics of the training corpus against the benchmark scenes (issue 11, item 6).

    python scripts/corpus_stats.py [--motion 1.0,0.3] [--n 24]

For 8-frame groups of 128x128 crops (frames in 0..1) it prints the mean |frame-to-frame
difference| and the PSNR of GAP-TV (40 iterations, a random binary mask) for each source of
the built-in corpus at each `--motion` scale, and the same for Drop8, Runner8 and Traffic. A
corpus whose motion is much harsher than real footage teaches the network the wrong prior.
"""

from __future__ import annotations

import argparse

import numpy as np

from qsci.data import EVAL_SCENES, load_benchmark
from qsci.metrics import psnr_frame
from qsci.physics import random_binary_mask
from qsci.solvers import gap_tv
from training.config import TrainConfig
from training.data import ClipDataset

CROP, T = 128, 8


def stats(clips: list[np.ndarray]) -> tuple[float, float]:
    diffs, scores = [], []
    for i, x in enumerate(clips):
        diffs.append(float(np.abs(np.diff(x, axis=0)).mean()))
        mask = random_binary_mask(T, CROP, CROP, seed=i)
        rec = np.clip(gap_tv((x * mask).sum(0), mask, iters=40), 0, 1)
        scores.append(float(np.mean([psnr_frame(a, b) for a, b in zip(x, rec)])))
    return float(np.mean(diffs)), float(np.mean(scores))


def corpus_clips(motion: float, n: int) -> dict[str, list[np.ndarray]]:
    srcs = ClipDataset(TrainConfig(crop=CROP, motion=motion, data="builtin")).sources()
    return {type(s).__name__: [s.sample(np.random.default_rng([1, k, i]), T, CROP) for i in range(n)]
            for k, s in enumerate(srcs)}


def benchmark_clips(scene: str, n: int) -> list[np.ndarray]:
    orig = np.asarray(load_benchmark(scene)[0], np.float32)  # (F, H, W) in 0..1
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        g = int(rng.integers(orig.shape[0] // T)) * T
        y0, x0 = rng.integers(0, orig.shape[1] - CROP + 1), rng.integers(0, orig.shape[2] - CROP + 1)
        out.append(orig[g:g + T, y0:y0 + CROP, x0:x0 + CROP])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--motion", default="1.0,0.3")
    p.add_argument("--n", type=int, default=24)
    args = p.parse_args()
    print(f"{'source':34s} {'mean |dx|':>10s} {'GAP-TV dB':>10s}")
    for scene in EVAL_SCENES:
        d, s = stats(benchmark_clips(scene, args.n))
        print(f"{'benchmark ' + scene:34s} {d:10.4f} {s:10.2f}", flush=True)
    for motion in (float(m) for m in args.motion.split(",")):
        for name, clips in corpus_clips(motion, args.n).items():
            d, s = stats(clips)
            print(f"{f'corpus {name} (motion {motion})':34s} {d:10.4f} {s:10.2f}", flush=True)


if __name__ == "__main__":
    main()
