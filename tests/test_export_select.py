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


def test_select_keeps_earlier_selections_of_the_same_model(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "checkpoints_dir", lambda: tmp_path)
    first = {"candidates": {"runs/s10/x": {"psnr": 28.23}}, "chosen": "runs/s10/x"}
    other = {"candidates": {"zoo": {"psnr": 31.0}}, "chosen": "zoo"}
    (tmp_path / "validation.json").write_text(json.dumps({"qsci-t-gap-2bit": first, "qsci-t-gap-4bit": other}))
    psnr = iter([28.31, 28.20])
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: SimpleNamespace(
        returncode=0, stdout=json.dumps({"mean": {"psnr": next(psnr), "ssim": 0.8}}), stderr=""))
    export.select("qsci-t-gap-2bit", [export.Path("runs/s11/y")])
    export.select("qsci-t-gap-2bit", [export.Path("runs/s12/z")])
    record = json.loads((tmp_path / "validation.json").read_text())
    assert record["qsci-t-gap-4bit"] == other  # other models untouched
    now = record["qsci-t-gap-2bit"]
    assert now["candidates"]["runs/s12/z"]["psnr"] == 28.20 and now["chosen"] == "runs/s12/z"
    assert [e["chosen"] for e in now["earlier"]] == ["runs/s10/x", "runs/s11/y"]  # oldest first, none nested
    assert now["earlier"][1]["candidates"]["runs/s11/y"]["psnr"] == 28.31 and "earlier" not in now["earlier"][1]
    assert now["selected"].endswith(" UTC")


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


def test_add_lineage_sums_the_stages_and_names_the_earlier_ones():
    # the 4-bit model of 2026-12-03: a 130-minute stage started from the zoo's previous 4-bit model
    prev = {"name": "qsci-t-gap-4bit", "file": "qsci-t-gap-4bit.pt", "samples_seen": 9892, "steps": 2473,
            "training_minutes": 177.81, "git_commit": "da83158, 01f4dc8"}
    stage = {"samples_seen": 6652, "steps": 1663, "training_minutes": 127.51, "init_from": "runs/s11/start_4bit.pt",
             "git_commit": "5357035"}
    entry = export.add_lineage(stage, prev)
    assert (entry["samples_seen"], entry["steps"], entry["training_minutes"]) == (16544, 4136, 305.32)
    assert entry["init_from"] == ("checkpoints/qsci-t-gap-4bit.pt (the previous qsci-t-gap-4bit: 9,892 samples, "
                                  "177.81 min), as runs/s11/start_4bit.pt")
    assert entry["git_commit"] == "5357035 (this stage); earlier stages: da83158, 01f4dc8"
    assert stage["samples_seen"] == 6652  # the stage's own record is left as it was


def test_pack_continues_names_a_missing_model(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "checkpoints_dir", lambda: tmp_path / "zoo")
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "manifest.json").write_text(json.dumps({"models": []}))
    with pytest.raises(SystemExit, match="pack --continues qsci-t-gap-4bit: no such model in"):
        export.pack(tmp_path / "run", "qsci-t-gap-4bit", None, None, continues="qsci-t-gap-4bit")
