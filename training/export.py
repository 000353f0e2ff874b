"""Turn finished training runs into the model zoo: compact checkpoints + a measured manifest.

    python -m training.export pack --run runs/t_qat4 --name qsci-t-4bit --command-file runs/t_qat4.cmd
    python -m training.export measure [--names qsci-t-4bit,...]   # runs `python -m qsci evaluate`
    python -m training.export curve --name qsci-t-gap-fp32 --run runs/t_gap_fp32 [--start step0.json]
    python -m training.export select --name qsci-t-gap-4bit --run runs/a/t_gap_qat4 --run runs/b/t_gap_qat4
    python -m training.export latency [--bench-dir runs/bench]   # after `bash scripts/bench_table.sh`

`pack` writes `checkpoints/<name>.pt` (integer codes at the model's bit width; fp32 for the
full-precision model) and its manifest entry (sizes, complexity, training provenance). `measure`
fills every entry's scores by running the evaluation CLI in a subprocess, so each number in the
manifest is exactly what `python -m qsci evaluate --model <name>` prints. `latency` copies the
seconds `bash scripts/bench_table.sh` measured (its JSON files) into the entries, for the backend
the engine runs each model on; the app plots them for methods not run on its page.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from qsci import data
from qsci.deploy.weights import read_weights
from qsci.zoo import checkpoints_dir

EVAL_SCENES = ",".join(data.EVAL_SCENES)
MASKS = {"quantized_sci": "quantized_sci", "random": "random:0"}


def _manifest_path() -> Path:
    return checkpoints_dir() / "manifest.json"


def load_manifest() -> dict:
    p = _manifest_path()
    return json.loads(p.read_text()) if p.is_file() else {"models": []}


def save_manifest(manifest: dict) -> None:
    # the warm-start family first (it is the better one), then the paper's end-to-end models
    manifest["models"].sort(key=lambda m: (m["preset"], m.get("config", {}).get("init") != "gaptv", -m["bits"]))
    tmp = _manifest_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, _manifest_path())


def _hardware(threads: int | None) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu}, {os.cpu_count()} cores" + (f", {threads} torch threads" if threads else "")


def _training_minutes(run: Path) -> float:
    """Wall-clock minutes of the run: the logged `elapsed_s` restarts at each resume (--resume
    appends to the same log), so each segment's last value is summed."""
    total = last = 0.0
    log = run / "log.jsonl"
    if log.is_file():
        for line in log.read_text().splitlines():
            elapsed = json.loads(line).get("elapsed_s")
            if elapsed is None:
                continue
            if float(elapsed) < last:  # a resumed process: a new segment
                total += last
            last = float(elapsed)
    return round((total + last) / 60.0, 2)


def _run_samples(run: Path) -> int:
    return int(read_weights(run / "ckpt.pt").get("samples", 0))


def _run_steps(run: Path) -> int:
    return int(read_weights(run / "ckpt.pt").get("step", 0))


def add_lineage(entry: dict, prev: dict) -> dict:
    """The manifest entry of a stage that started from the zoo's `prev` model (`pack --continues`):
    samples, steps and minutes add up, and `init_from` / `git_commit` name the earlier stages."""
    entry = dict(entry)
    for key in ("samples_seen", "steps"):
        entry[key] = int(entry[key]) + int(prev.get(key) or 0)
    entry["training_minutes"] = round(entry["training_minutes"] + float(prev.get("training_minutes") or 0), 2)
    entry["init_from"] = (f"checkpoints/{prev['file']} (the previous {prev['name']}: {int(prev.get('samples_seen') or 0):,} "
                          f"samples, {prev.get('training_minutes')} min), as {entry['init_from']}")
    entry["git_commit"] = f"{entry['git_commit']} (this stage); earlier stages: {prev.get('git_commit')}"
    return entry


def pack(run: Path, name: str, command_file: Path | None, commit_file: Path | None,
         earlier_runs: list[Path] = (), continues: str | None = None) -> dict:
    from qsci.deploy.complexity import count
    from qsci.deploy.packing import save_packed
    from qsci.deploy.weights import load_model, open_weights

    prev = None  # checked before anything is written
    if continues:
        prev = next((m for m in load_manifest()["models"] if m["name"] == continues), None)
        if prev is None:
            raise SystemExit(f"pack --continues {continues}: no such model in {_manifest_path()}")
    state = open_weights(run / "ckpt.pt")  # read once: the network and the training record
    ckpt = state.content
    model = load_model(state)
    out_dir = checkpoints_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.pt"
    save_packed(model, target, config=model.config)
    cx = count(model, (8, 256, 256))
    train_cfg = ckpt.get("train_config", {})
    entry = {
        "name": name,
        "file": target.name,
        "preset": model.config.preset,
        "bits": int(model.config.bits),
        "config": model.config.to_dict(),
        "params": cx.params,
        "macs": cx.macs,
        "bops": cx.bops,
        "theoretical_speedup": round(cx.theoretical_speedup, 3),
        "size_bytes": target.stat().st_size,
        # stages started with --init-from count from zero: add the earlier stages of this model
        "samples_seen": int(ckpt.get("samples", 0)) + sum(_run_samples(r) for r in earlier_runs),
        "steps": int(ckpt.get("step", 0)) + sum(_run_steps(r) for r in earlier_runs),
        "training_minutes": round(_training_minutes(run) + sum(_training_minutes(r) for r in earlier_runs), 2),
        "hardware": _hardware(train_cfg.get("threads")),
        "init_from": train_cfg.get("init_from") or None,
        "git_commit": commit_file.read_text().strip() if commit_file else None,
        "command": command_file.read_text().strip() if command_file else None,
        "metrics": {},
    }
    if int(model.config.bits) == 32:  # keep the whole training state so later sessions can resume
        shutil.copyfile(run / "ckpt.pt", out_dir / f"{name}.train.pt")
        entry["train_state"] = f"{name}.train.pt"
    manifest = load_manifest()
    if prev is not None:
        entry = add_lineage(entry, prev)
    manifest["models"] = [m for m in manifest["models"] if m["name"] != name] + [entry]
    save_manifest(manifest)
    return entry


def _evaluate_cli(name: str | None, mask: str, model_flag: list[str]) -> tuple[dict, str]:
    cmd = [sys.executable, "-m", "qsci", "evaluate", *model_flag, "--scenes", EVAL_SCENES, "--mask", mask]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"evaluation failed for {name}: {res.stderr.strip()}")
    shown = "python -m qsci evaluate " + " ".join(cmd[4:])
    return json.loads(res.stdout), shown


def _scores(result: dict) -> dict:
    """Per-scene PSNR/SSIM only: latency belongs to `python -m qsci bench`, not to a shared-CPU eval."""
    return {s: {"psnr": v["psnr"], "ssim": v["ssim"]} for s, v in result["scenes"].items()}


def measure(names: list[str] | None) -> None:
    manifest = load_manifest()
    for entry in manifest["models"]:
        if names and entry["name"] not in names:
            continue
        for key, mask in MASKS.items():
            result, shown = _evaluate_cli(entry["name"], mask, ["--model", entry["name"]])
            entry["metrics"][key] = {"command": shown, "backend": result["backend"], "scenes": _scores(result), "mean": result["mean"]}
            print(f"{entry['name']:14s} {key:14s} {result['mean']['psnr']:.2f} dB ({result['backend']})", flush=True)
        save_manifest(manifest)
    if not names or "gap-tv" in names:
        gap = {}
        for key, mask in MASKS.items():
            result, shown = _evaluate_cli("gap-tv", mask, ["--model", "gap-tv"])
            gap[key] = {"command": shown, "scenes": _scores(result), "mean": result["mean"]}
        manifest["gap_tv"] = {**manifest.get("gap_tv", {}), **gap}  # keeps its latency
        save_manifest(manifest)


def latency(bench_dir: Path) -> dict:
    """Record each manifest model's (and GAP-TV's) bench seconds from `bench_table.sh`'s JSON files:
    the engine's backend (int8 for quantized models, channels-last fp32 for full precision), our
    trained weights only. Returns {name: seconds}."""
    found = {}
    for f in sorted(bench_dir.glob("*.json")):
        r = json.loads(f.read_text())
        if r.get("weights") in ("trained", "none") and "median_s" in r:
            t, h, w = r["size"]
            when = datetime.fromtimestamp(f.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            found[(r["model"], r["backend"])] = {
                "seconds": round(float(r["median_s"]), 4), "backend": r["backend"], "threads": r["threads"],
                "size": f"{h}x{w}x{t}", "measured": when, "command": "bash scripts/bench_table.sh"}
    manifest = load_manifest()
    recorded = {}
    for entry in manifest["models"]:
        hit = found.get((entry["name"], "fp32-cl" if entry["bits"] >= 32 else "int8"))
        if hit is not None:
            entry["latency"] = hit
            recorded[entry["name"]] = hit["seconds"]
    gap = next((v for (name, _b), v in found.items() if name == "gap-tv"), None)
    if gap is not None:
        manifest.setdefault("gap_tv", {})["latency"] = gap
        recorded["gap-tv"] = gap["seconds"]
    save_manifest(manifest)
    return recorded


def select(name: str, runs: list[Path]) -> dict:
    """Which weights to ship for `name`: the zoo's current file or a run's `ckpt.pt`, by mean PSNR
    on the validation clips (`--scenes validation`), so the benchmark scenes stay a test set.
    The choice and every candidate's score go to `checkpoints/validation.json`; an earlier
    selection for `name` moves to its `earlier` list (newest last) instead of being lost."""
    candidates = {"zoo": ["--model", name]} if (checkpoints_dir() / f"{name}.pt").is_file() else {}
    candidates.update({str(run): ["--model", name, "--checkpoint", str(run / "ckpt.pt")] for run in runs})
    scores = {}
    for label, flags in candidates.items():
        cmd = [sys.executable, "-m", "qsci", "evaluate", *flags, "--scenes", "validation"]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise SystemExit(f"validation failed for {label}: {res.stderr.strip()}")
        mean = json.loads(res.stdout)["mean"]
        scores[label] = {"psnr": mean["psnr"], "ssim": mean["ssim"], "command": "python -m qsci evaluate " + " ".join(cmd[4:])}
        print(f"{name} {label}: {mean['psnr']:.2f} dB on the validation clips", flush=True)
    best = max(scores, key=lambda k: scores[k]["psnr"])
    path = checkpoints_dir() / "validation.json"
    record = json.loads(path.read_text()) if path.is_file() else {}
    prev = record.get(name)
    earlier = (prev.pop("earlier", []) + [prev]) if prev else []
    record[name] = {"candidates": scores, "chosen": best,
                    "selected": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    if earlier:
        record[name]["earlier"] = earlier
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record[name]


def curve(name: str, runs: list[Path], start: Path | None) -> dict:
    """Samples seen vs benchmark PSNR of one model over its training stages -> checkpoints/ + a plot.

    Each stage's evaluation lines (`python -m qsci evaluate` protocol, logged by training.train)
    are appended to `checkpoints/learning_curve.json` under `name`; samples count on from the
    stages already recorded there. `start`: an evaluate JSON of the model before training.
    """
    path = checkpoints_dir() / "learning_curve.json"
    curves = json.loads(path.read_text()) if path.is_file() else {}
    points = curves.get(name, [])
    if start is not None and not points:
        res = json.loads(start.read_text())
        points.append({"samples": 0, "psnr": res["mean"]["psnr"], "ssim": res["mean"]["ssim"], "run": "start"})
    for run in runs:
        if any(p["run"] == str(run) for p in points):
            continue  # recorded already: the command can be repeated safely
        offset = max((p["samples"] for p in points), default=0)
        batch = int(json.loads((run / "config.json").read_text()).get("batch", 1))
        for line in (run / "log.jsonl").read_text().splitlines():
            rec = json.loads(line)
            if "eval" in rec:
                ev = rec["eval"]["mean"]
                points.append({"samples": offset + rec["step"] * batch, "psnr": ev["psnr"], "ssim": ev["ssim"],
                               "run": str(run)})
    curves[name] = points
    path.write_text(json.dumps(curves, indent=2) + "\n")
    _plot_curves(curves, load_manifest().get("gap_tv"))
    return curves


def _plot_curves(curves: dict, gap: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    for name, pts in curves.items():
        ax.plot([p["samples"] for p in pts], [p["psnr"] for p in pts], "o-", label=name)
    if gap:
        ax.axhline(gap["quantized_sci"]["mean"]["psnr"], color="gray", ls="--", label="GAP-TV (no training)")
    ax.set_xlabel("training samples seen (this family)")
    ax.set_ylabel("mean PSNR, Drop8/Runner8/Traffic (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = checkpoints_dir().parent / "assets" / "learning_curve.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def markdown_table(manifest: dict) -> str:
    """The README's zoo table, straight from the manifest (no number typed by hand)."""
    from qsci.published import QSCI_PAPER, published_psnr

    paper = {p.bits: p for p in QSCI_PAPER}
    rows = ["| model | bits | params | size | BOPs (256x256x8) | samples seen | train min | Drop8 | Runner8 | Traffic | mean (Q-SCI mask) | mean (random mask) | paper (S preset, six-scene mean) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def cell(sc):
        return f"{sc['psnr']:.2f} / {sc['ssim']:.3f}"

    gap = manifest.get("gap_tv")
    if gap:
        q, r = gap["quantized_sci"], gap["random"]
        rows.append("| gap-tv | - | - | - | - | - | - | " + " | ".join(cell(q["scenes"][s]) for s in ("drop8", "runner8", "traffic"))
                    + f" | **{cell(q['mean'])}** | {cell(r['mean'])} | {published_psnr('GAP-TV', ('drop8', 'runner8', 'traffic')):.2f} dB (published re-run, these 3 scenes) |")
    for m in manifest["models"]:
        q, r = m["metrics"].get("quantized_sci"), m["metrics"].get("random")
        if not q or not r:
            continue
        p = paper.get(m["bits"])
        rows.append(
            f"| {m['name']} | {m['bits'] if m['bits'] < 32 else 'fp32'} | {m['params']:,} | {m['size_bytes'] / 1e6:.2f} MB | {m['bops'] / 1e12:.2f} T"
            f" | {m['samples_seen']:,} | {m['training_minutes']:.0f} | "
            + " | ".join(cell(q["scenes"][s]) for s in ("drop8", "runner8", "traffic"))
            + f" | **{cell(q['mean'])}** | {cell(r['mean'])} | {p.psnr:.2f} dB / {p.ssim:.3f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack", help="compact checkpoint + manifest entry from a run folder")
    pk.add_argument("--run", type=Path, required=True)
    pk.add_argument("--name", required=True)
    pk.add_argument("--command-file", type=Path, default=None)
    pk.add_argument("--commit-file", type=Path, default=None)
    pk.add_argument("--earlier-run", type=Path, action="append", default=[], help="an earlier stage of the same model (adds its samples and minutes)")
    pk.add_argument("--continues", default=None, help="the zoo model this run started from (adds its samples, minutes and commits)")
    ms = sub.add_parser("measure", help="evaluate manifest models with the CLI and record the scores")
    ms.add_argument("--names", default="", help="comma-separated subset (default: all, plus gap-tv)")
    sub.add_parser("table", help="print the README's zoo table (markdown) from the manifest")
    cv = sub.add_parser("curve", help="append a run's evaluations to checkpoints/learning_curve.json (+ plot)")
    cv.add_argument("--name", required=True)
    cv.add_argument("--run", type=Path, action="append", required=True, help="a stage's run folder, in order")
    cv.add_argument("--start", type=Path, default=None, help="evaluate JSON of the model before training")
    la = sub.add_parser("latency", help="record bench_table.sh's seconds in the manifest (for the app's latency chart)")
    la.add_argument("--bench-dir", type=Path, default=Path("runs/bench"))
    se = sub.add_parser("select", help="zoo file vs runs' checkpoints on the validation clips -> checkpoints/validation.json")
    se.add_argument("--name", required=True)
    se.add_argument("--run", type=Path, action="append", required=True, help="a run folder holding ckpt.pt")
    args = p.parse_args(argv)
    if args.cmd == "select":
        print(json.dumps({"chosen": select(args.name, args.run)["chosen"]}))
    elif args.cmd == "pack":
        entry = pack(args.run, args.name, args.command_file, args.commit_file, args.earlier_run, args.continues)
        print(json.dumps({k: entry[k] for k in ("name", "bits", "params", "bops", "size_bytes", "samples_seen")}))
    elif args.cmd == "latency":
        print(json.dumps(latency(args.bench_dir)))
    elif args.cmd == "table":
        print(markdown_table(load_manifest()))
    elif args.cmd == "curve":
        pts = curve(args.name, args.run, args.start)[args.name]
        print("\n".join(f"{p['samples']:>8d} samples  {p['psnr']:.2f} dB" for p in pts))
    else:
        measure([n for n in args.names.split(",") if n] or None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
