"""`training.export select`: the shipped weights are chosen on the validation clips, not on the benchmark."""

from __future__ import annotations

import json
import subprocess
from types import SimpleNamespace

import pytest

from training import export


def test_select_picks_the_best_validation_score_and_records_every_candidate(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "checkpoints_dir", lambda: tmp_path)
    (tmp_path / "qsci-t-gap-4bit.pt").write_bytes(b"")  # the zoo's current file exists
    scores = {"zoo": 29.1, "runs/a/t_gap_qat4": 29.4, "runs/b/t_gap_qat4": 29.3}
    seen = []

    def fake_run(cmd, **_kw):
        seen.append(cmd)
        assert cmd[cmd.index("--scenes") + 1] == "validation"  # never the benchmark scenes
        label = "zoo" if "--checkpoint" not in cmd else cmd[cmd.index("--checkpoint") + 1].rsplit("/", 1)[0]
        return SimpleNamespace(returncode=0, stdout=json.dumps({"mean": {"psnr": scores[label], "ssim": 0.8}}), stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    out = export.select("qsci-t-gap-4bit", [export.Path("runs/a/t_gap_qat4"), export.Path("runs/b/t_gap_qat4")])
    assert out["chosen"] == "runs/a/t_gap_qat4" and len(seen) == 3
    record = json.loads((tmp_path / "validation.json").read_text())["qsci-t-gap-4bit"]
    assert {k: v["psnr"] for k, v in record["candidates"].items()} == scores
    assert record["candidates"]["runs/b/t_gap_qat4"]["command"].endswith(
        "--model qsci-t-gap-4bit --checkpoint runs/b/t_gap_qat4/ckpt.pt --scenes validation")


def test_select_names_the_candidate_whose_evaluation_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "checkpoints_dir", lambda: tmp_path)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: SimpleNamespace(returncode=1, stdout="", stderr="error: no such file"))
    with pytest.raises(SystemExit, match="validation failed for runs/x: error: no such file"):
        export.select("qsci-t-gap-2bit", [export.Path("runs/x")])


def test_training_minutes_add_up_resumed_segments(tmp_path):
    # one log, two processes: elapsed_s restarts when --resume continues the run
    records = [{"step": 20, "elapsed_s": 600.0}, {"step": 40, "elapsed_s": 1200.0},
               {"step": 40, "eval": {}}, {"step": 60, "elapsed_s": 300.0}, {"step": 80, "elapsed_s": 900.0}]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert export._training_minutes(tmp_path) == 35.0
    assert export._training_minutes(tmp_path / "missing") == 0.0


def test_latency_records_the_engine_backend_seconds_of_trained_models(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "checkpoints_dir", lambda: tmp_path)
    gap = {"preset": "t", "config": {"init": "gaptv"}}
    manifest = {"models": [{"name": "qsci-t-gap-4bit", "bits": 4, **gap}, {"name": "qsci-t-gap-fp32", "bits": 32, **gap},
                           {"name": "qsci-t-2bit", "bits": 2, "preset": "t"}],
                "gap_tv": {"quantized_sci": {"mean": {"psnr": 30.13}}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    bench = tmp_path / "bench"
    bench.mkdir()
    rows = [("gap-int8-4bit", "qsci-t-gap-4bit", "int8", "trained", 0.3476), ("gap-bf16", "qsci-t-gap-fp32", "bf16-cl", "trained", 0.74),
            ("gap-fp32-cl", "qsci-t-gap-fp32", "fp32-cl", "trained", 1.2568), ("s-int8-4bit", "qsci-s-4bit", "int8", "random", 1.0),
            ("gap-tv", "gap-tv", "c-fp32", "none", 0.0403)]
    for file, model, backend, weights, seconds in rows:
        (bench / f"{file}.json").write_text(json.dumps({"model": model, "backend": backend, "weights": weights,
                                                        "median_s": seconds, "threads": 2, "size": [8, 256, 256]}))
    assert export.latency(bench) == {"qsci-t-gap-4bit": 0.3476, "qsci-t-gap-fp32": 1.2568, "gap-tv": 0.0403}
    saved = json.loads((tmp_path / "manifest.json").read_text())
    models = {m["name"]: m for m in saved["models"]}
    entry = models["qsci-t-gap-4bit"]["latency"]
    assert entry["backend"] == "int8" and entry["size"] == "256x256x8" and entry["command"] == "bash scripts/bench_table.sh"
    assert "latency" not in models["qsci-t-2bit"]  # not benched: nothing recorded
    assert saved["gap_tv"]["latency"]["seconds"] == 0.0403 and saved["gap_tv"]["quantized_sci"]["mean"]["psnr"] == 30.13
