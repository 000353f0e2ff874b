"""Every command line in training/README.md runs, in order, at test size (the README must stay true).

The lines form one chain in a temporary folder: full precision, a run on a DAVIS-shaped folder,
QAT from the full-precision run, progressive QAT from the 4-bit run, a fine-tuning stage, the two
resume forms, two processes under torchrun, and the throughput benchmark. Each line runs as
written with test-size flags appended (a two-unit-wide network, 16x16 crops, two steps); argparse
takes the last value of a flag, so the README's own values are what the appended ones replace.
The DAVIS path points at a generated folder, torchrun starts 2 processes instead of 4 on a free
port, and the benchmark runs on the CPU when CUDA is absent.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.test_readme_commands import ok, readme_commands, sh
from tests.test_training import _free_port
from training.checkpointing import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
TRAINING_README = REPO / "training" / "README.md"
TINY_MODEL = {"in_ch": 8, "units": 1}
TINY = ["--crop", "16", "--batch", "2", "--warmup-steps", "1", "--eval-scenes", "[]", "--final-eval", "false",
        "--num-workers", "0", "--threads", "1", "--save-every-minutes", "1e9", "--device", "cpu"]


def _davis_folder(root: Path) -> Path:
    """A DAVIS-shaped folder (JPEGImages/480p/<video>/*.jpg): one 12-frame clip of a moving ramp."""
    clip = root / "DAVIS" / "JPEGImages" / "480p" / "ramp"
    clip.mkdir(parents=True)
    yy, xx = np.mgrid[0:48, 0:64]
    for t in range(12):
        frame = ((xx + 2 * t + yy) % 64 * 4).astype(np.uint8)
        Image.fromarray(np.stack([frame] * 3, -1)).save(clip / f"{t:05d}.jpg")
    return root / "DAVIS"


def _test_size(argv: list[str], steps: int) -> list[str]:
    """argv with the test-size flags appended (the README's --model-overrides kept and merged)."""
    if "--resume" in argv:  # the checkpoint's config is the run's; only the length changes
        return argv + ["--max-steps", str(steps), "--threads", "1", "--num-workers", "0"]
    model = dict(TINY_MODEL)
    if "--model-overrides" in argv:
        model.update(json.loads(argv[argv.index("--model-overrides") + 1]))
    data = [] if "--data" in argv else ["--data", "images"]
    return argv + data + TINY + ["--model-overrides", json.dumps(model), "--max-steps", str(steps)]


def _ckpt(tmp: Path, run: str) -> dict:
    return load_checkpoint(tmp / "runs" / run / "ckpt.pt")


def test_training_readme_commands_run_in_order(tmp_path):
    commands = readme_commands(TRAINING_README)
    train = [c for c in commands if "training.train" in c]
    assert len(train) == 8 and len(commands) == 9, commands
    davis = _davis_folder(tmp_path)
    steps = {"--resume runs/t_fp32/ckpt.pt": 3, "--resume auto": 4}
    for cmd in commands:
        argv = shlex.split(cmd.replace("/data/DAVIS", str(davis)))
        if argv[0] == "torchrun":  # the same program, 2 processes on a free port
            argv[argv.index("--nproc_per_node") + 1] = "2"
            argv = _test_size([sys.executable, "-m", "torch.distributed.run", "--master_addr", "127.0.0.1",
                               "--master_port", str(_free_port()), *argv[1:]], 2)
        elif argv[:3] == ["python", "-m", "training.bench"]:
            device = "cuda" if torch.cuda.is_available() else "cpu"
            argv = [sys.executable, *argv[1:], "--device", device, "--crop", "16", "--steps", "1",
                    "--warmup", "0", "--threads", "1"]
        else:
            assert argv[:3] == ["python", "-m", "training.train"], cmd
            argv = _test_size([sys.executable, *argv[1:]], next((v for k, v in steps.items() if k in cmd), 2))
        r = ok(sh(argv, tmp_path, timeout=300))
        if "--init-from runs/t_qat4/ckpt.pt --out runs/t_qat3" in cmd:  # progressive: 3-bit steps fresh
            assert ", 0 fresh" not in r.stdout + r.stderr and " fresh" in r.stdout + r.stderr
        if "--data" in cmd:
            assert _ckpt(tmp_path, "s_fp32")["train_config"]["data"] == str(davis)
        if "training.bench" in cmd:
            assert "samples/s" in r.stdout, r.stdout

    fp, qat4, qat3, ft = (_ckpt(tmp_path, n) for n in ("t_fp32", "t_qat4", "t_qat3", "t_qat4_ft"))
    assert fp["config"]["bits"] == 32 and fp["step"] == 4  # two steps, then resumed to 3, then to 4
    assert (qat4["config"]["bits"], qat3["config"]["bits"], ft["config"]["bits"]) == (4, 3, 4)
    assert qat3["train_config"]["init_from"] == "runs/t_qat4/ckpt.pt"
    assert ft["train_config"]["init_from"] == "runs/t_qat4/ckpt.pt" and ft["train_config"]["lr"] == 1e-5
    davis_run = _ckpt(tmp_path, "s_fp32")  # the torchrun line wrote over the DAVIS run's folder
    assert davis_run["config"]["preset"] == "s" and davis_run["samples"] == 2 * 2 * 2  # 2 ranks
