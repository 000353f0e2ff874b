"""Benchmark GAP-TV on the grayscale simulation scenes (spec sections 2-3).

Usage: python scripts/check_gaptv.py [--scenes drop8 runner8 traffic] [--iters N] [--threads 2]
Prints per-scene PSNR/SSIM and seconds per measurement (wall and process CPU time, which is
robust to other load on a shared machine), then the mean over the scenes. The solver is numpy and
single-threaded; --threads only sets torch's pool, as the benchmark protocol asks.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import scipy.io as sio
import torch

from qsci.data import EVAL_SCENES
from qsci.metrics import frame_scores
from qsci.solvers.gaptv import gap_tv

DATA = Path(os.environ.get("QSCI_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def load(scene: str) -> tuple[np.ndarray, np.ndarray]:
    orig = sio.loadmat(DATA / "simulation" / f"{scene}_cacti.mat")["orig"]
    mask = sio.loadmat(DATA / "mask" / "quantized_sci_mask.mat")["mask"]
    x = np.moveaxis(orig, -1, 0).astype(np.float32) / 255.0
    m = np.moveaxis(mask, -1, 0).astype(np.float32)
    return x, m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", nargs="+", default=list(EVAL_SCENES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kw", default="{}", help="JSON dict of extra gap_tv keyword arguments")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    kw = json.loads(args.kw)
    rows = []
    for scene in args.scenes:
        x, m = load(scene)
        t = m.shape[0]
        gt = x.reshape(-1, t, *x.shape[1:])
        y = (gt * m).sum(1)
        t0 = time.perf_counter()
        c0 = time.process_time()
        rec = gap_tv(y, m, **kw)
        sec = (time.perf_counter() - t0) / len(y)
        cpu = (time.process_time() - c0) / len(y)
        p, s = frame_scores(gt, rec)
        rows.append((scene, float(np.mean(p)), float(np.mean(s)), sec, cpu))
        print(f"{scene:10s} PSNR {rows[-1][1]:6.2f}  SSIM {rows[-1][2]:.4f}  {sec:5.2f} s/meas wall"
              f"  {cpu:5.2f} s/meas cpu", flush=True)
    print(f"{'mean':10s} PSNR {np.mean([r[1] for r in rows]):6.2f}  SSIM {np.mean([r[2] for r in rows]):.4f}"
          f"  {np.mean([r[3] for r in rows]):5.2f} s/meas wall  {np.mean([r[4] for r in rows]):5.2f} s/meas cpu")


if __name__ == "__main__":
    main()
