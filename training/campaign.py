"""One stretch of the warm-start training campaign: full precision, then QAT at every bit width.

    python -m training.campaign --fp-minutes 60 --qat-minutes 25 --parallel 2        # 2-core CPU
    python -m training.campaign --device cuda --fp-minutes 4 --qat-minutes 1.2 \\
        --crop 128 --batch 16 --parallel 4 --threads 4                                 # one GPU

Why a driver: the campaign spans sessions. Each stretch starts from the committed training state
(`checkpoints/qsci-<preset>-gap-fp32.train.pt`, or the end-to-end model plus a zeroed output
layer the first time), trains full precision on a fresh cosine schedule, then runs QAT for each
bit width from the new full-precision weights, which also serve as its distillation teacher
(several at once, one thread each on a CPU), and
finally packs every model into `checkpoints/` and measures it with `python -m qsci evaluate`
through `training.export`. Stages are plain `python -m training.train` processes, so each one
is resumable and logged on its own; `--dry-run` prints the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from qsci.zoo import checkpoints_dir
from training.config import parse_value

PAPER_FP = "checkpoints/qsci-{preset}-fp32.train.pt"  # the end-to-end model the family started from


def _train_cmd(config: str, out: Path, minutes: float, args, extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "training.train", "--config", config, "--out", str(out),
           "--minutes", str(minutes), "--max-steps", "0", "--device", args.device,
           "--threads", str(args.threads)]
    for flag in ("crop", "batch", "workers"):
        if getattr(args, flag):
            cmd += [f"--{'num-workers' if flag == 'workers' else flag}", str(getattr(args, flag))]
    if args.tiny:  # test-sized networks and data (CPU check of the recipe)
        cmd += ["--model-overrides", '{"in_ch": 8, "units": 1}', "--data", "images",
                "--eval-scenes", "[]", "--crop", "16", "--batch", "2"]
    return cmd + extra


def plan(args) -> list[list[list[str]]]:
    """Waves of commands; the commands of one wave run at the same time."""
    runs = Path(args.runs)
    p = args.preset
    fp_run = runs / f"{p}_gap_fp32"
    state = Path(os.path.relpath(checkpoints_dir() / f"qsci-{p}-gap-fp32.train.pt"))
    waves: list[list[list[str]]] = []
    if args.fp_minutes > 0:
        if args.tiny:
            start = ["--init-from", ""]  # a tiny network cannot start from the real checkpoints
        elif state.is_file():
            start = ["--init-from", str(state), "--zero-last", "false"]
        else:
            start = ["--init-from", PAPER_FP.format(preset=p), "--zero-last", "true"]
        waves.append([_train_cmd(f"training/configs/{p}_gap_fp32.json", fp_run, args.fp_minutes, args,
                                 start)])
    fp_ckpt = fp_run / "ckpt.pt" if args.fp_minutes > 0 else state
    starts = qat_starts(args.bits, args.ladder)
    levels: dict[int, list[list[str]]] = {}
    for b in args.bits:
        src = fp_ckpt if starts[b] == 32 else runs / f"{p}_gap_qat{starts[b]}" / "ckpt.pt"
        levels.setdefault(_depth(b, starts), []).append(
            _train_cmd(f"training/configs/{p}_gap_qat{b}.json", runs / f"{p}_gap_qat{b}", args.qat_minutes,
                       args, ["--init-from", str(src), "--distill-from", str(fp_ckpt)]))
    for depth in sorted(levels):  # a ladder rung waits for the run it starts from
        qat = levels[depth]
        for i in range(0, len(qat), max(1, args.parallel)):
            waves.append(qat[i:i + args.parallel])
    return waves


def qat_starts(bits: list[int], ladder: bool) -> dict[int, int]:
    """The bit width each QAT run starts from: full precision (32), or with `ladder` the next
    wider width below 8 in this campaign (progressive QAT: 4 -> 3 -> 2; training/README.md)."""
    starts = {}
    for b in bits:
        wider = [w for w in bits if b < w < 8]
        starts[b] = min(wider) if ladder and wider else 32
    return starts


def _depth(b: int, starts: dict[int, int]) -> int:
    return 0 if starts[b] == 32 else 1 + _depth(starts[b], starts)


def _run_wave(wave: list[list[str]]) -> None:
    procs = []
    for cmd in wave:
        out = Path(cmd[cmd.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "command.txt").write_text(shlex.join(["python", *cmd[1:]]) + "\n")
        log = open(out / "stdout.txt", "a")
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), out, log))
    for proc, out, log in procs:
        rc = proc.wait()
        log.close()
        if rc != 0:
            raise SystemExit(f"stage {out} failed (exit {rc}); see {out / 'stdout.txt'}")


def export(args) -> None:
    """Pack every finished run of this stretch into checkpoints/ and measure it."""
    runs = Path(args.runs)
    names = []
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    for b in ([32] if args.fp_minutes > 0 else []) + list(args.bits):
        tag = "fp32" if b == 32 else f"{b}bit"
        run = runs / f"{args.preset}_gap_{'fp32' if b == 32 else f'qat{b}'}"
        name = f"qsci-{args.preset}-gap-{tag}"
        (run / "commit.txt").write_text(commit + "\n")
        subprocess.run([sys.executable, "-m", "training.export", "pack", "--run", str(run), "--name", name,
                        "--command-file", str(run / "command.txt"), "--commit-file", str(run / "commit.txt")],
                       check=True)
        names.append(name)
    subprocess.run([sys.executable, "-m", "training.export", "measure", "--names", ",".join(names)], check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.campaign", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="t", choices=("t", "s"))
    p.add_argument("--fp-minutes", type=float, default=60.0, help="0 = skip; QAT starts from the committed state")
    p.add_argument("--qat-minutes", type=float, default=25.0)
    p.add_argument("--bits", default="8,4,3,2", type=lambda s: [int(b) for b in s.split(",") if b])
    p.add_argument("--parallel", type=int, default=2, help="QAT runs at once")
    p.add_argument("--ladder", type=lambda s: parse_value(s, False), default=False,
                   help="true: 3-bit QAT starts from the 4-bit run, 2-bit from the 3-bit one")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    p.add_argument("--crop", type=int, default=0, help="override the configs' crop (0 = keep)")
    p.add_argument("--batch", type=int, default=0, help="override the configs' batch (0 = keep)")
    p.add_argument("--workers", type=int, default=0, help="loader processes per run (0 = keep the configs' 0: in-process)")
    p.add_argument("--runs", default="runs/campaign")
    p.add_argument("--skip-training", action="store_true", help="only --export runs that exist (e.g. brought back from a GPU)")
    p.add_argument("--export", action="store_true", help="pack into checkpoints/ and measure at the end")
    p.add_argument("--tiny", action="store_true", help="test-sized networks (CPU check of the recipe)")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    waves = plan(args)
    if args.dry_run:
        for i, wave in enumerate(waves):
            for cmd in wave:
                print(f"wave {i}: " + shlex.join(["python", *cmd[1:]]))
        return 0
    t0 = time.time()
    for i, wave in enumerate([] if args.skip_training else waves):
        print(f"wave {i}: {len(wave)} run(s), {time.time() - t0:.0f} s in", flush=True)
        _run_wave(wave)
    if args.export:
        export(args)
    print(json.dumps({"waves": len(waves), "seconds": round(time.time() - t0, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
