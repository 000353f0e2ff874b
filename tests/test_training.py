"""Training front end: loss goes down, resume is exact, DDP ranks agree, QAT starts from FP weights.

Everything runs a free-size T model (in_ch 8, one ResDNet unit) on 32x32 crops for a few steps,
so the whole file stays well under two minutes on two CPU cores.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from qsci.errors import QSCIError
from training import train as T
from training.checkpointing import load_checkpoint
from training.config import TrainConfig, build_arg_parser, resolve
from training.data import ClipDataset, FrameSource, crop_mask, load_fixed_mask

REPO = Path(__file__).resolve().parents[1]
TINY = {"in_ch": 8, "units": 1}


def tiny_cfg(out: Path, **kw) -> TrainConfig:
    base = dict(model_overrides=dict(TINY), data="images", crop=32, batch=2, lr=1e-3, min_lr=1e-5,
                warmup_steps=2, max_steps=6, num_workers=0, log_every=1, eval_scenes=[],
                final_eval=False, progress=False, threads=1, out=str(out), save_every_minutes=1e9,
                device="cpu")  # CPU even where CUDA exists: the exactness checks need determinism
    base.update(kw)
    return TrainConfig(**base).validate()


def test_config_resolution_and_presets(tmp_path):
    args = build_arg_parser().parse_args(["--preset", "t_qat4", "--lr", "3e-5", "--crop", "64",
                                          "--batch", "2", "--eval-scenes", "drop8,traffic"])
    cfg = resolve(args)
    assert (cfg.bits, cfg.lr, cfg.crop, cfg.batch) == (4, 3e-5, 64, 2)
    assert cfg.model_name == "qsci-t-4bit" and cfg.eval_scenes == ["drop8", "traffic"]
    assert cfg.init_from.endswith("t_fp32/ckpt.pt")
    cfg.crop_schedule = [[10, 256]]
    assert cfg.crop_at(9) == 64 and cfg.crop_at(10) == 256


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-5, warmup_steps=10, max_steps=110)
    lrs = [T.get_lr(s, cfg) for s in range(120)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[110] == pytest.approx(1e-5) and lrs[119] == pytest.approx(1e-5)


def test_samples_are_deterministic_and_shaped():
    cfg = tiny_cfg("unused", crop_schedule=[[3, 48]])
    ds = ClipDataset(cfg, rank=0)
    x0, x = ds[5]
    assert x0.shape == (1, 8, 32, 32) and x.shape == (8, 32, 32)
    assert torch.equal(ClipDataset(cfg, rank=0)[5][1], x)
    assert not torch.equal(ClipDataset(cfg, rank=1)[5][1], x)  # per-rank streams differ
    assert ds[6 * cfg.batch][1].shape == (8, 48, 48)  # the crop schedule, by step
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_tiny_run_lowers_loss(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_cfg(tmp_path / "run", max_steps=14, lr=2e-3, warmup_steps=2)
    summary = T.train(cfg)
    losses = [loss for _, loss in summary["losses"]]
    assert summary["step"] == 14 and len(losses) == 14
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:3])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["max_steps"] == 14
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert {"step", "loss", "lr", "samples_per_s"} <= set(json.loads(lines[0]))


def test_resume_reproduces_steps_and_losses(tmp_path):
    # The uninterrupted run uses two loader workers, the interrupted one none: the data stream
    # depends only on (seed, rank, sample index), so CPU results agree bit for bit.
    full = T.train(tiny_cfg(tmp_path / "full", num_workers=2))
    part = T.train(tiny_cfg(tmp_path / "part", stop_step=3))
    assert part["step"] == 3 and part["stop_reason"] == "stop_step"
    ckpt = load_checkpoint(tmp_path / "part" / "ckpt.pt")  # weights_only=True inside
    assert ckpt["step"] == 3 and ckpt["samples"] == 6
    cfg = TrainConfig.from_dict({**ckpt["train_config"], "stop_step": 0})
    resumed = T.train(cfg, ckpt)
    assert resumed["step"] == 6
    assert resumed["losses"] == full["losses"][3:]
    a, b = full["model"].state_dict(), resumed["model"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_qat_starts_from_fp_checkpoint(tmp_path):
    T.train(tiny_cfg(tmp_path / "fp", max_steps=2))
    fp = load_checkpoint(tmp_path / "fp" / "ckpt.pt")["model_state_dict"]
    # lr 0: the QAT run must end exactly on the full-precision weights, quantizers calibrated.
    summary = T.train(tiny_cfg(tmp_path / "q4", bits=4, init_from=str(tmp_path / "fp" / "ckpt.pt"),
                               lr=0.0, min_lr=0.0, max_steps=2))
    q = load_checkpoint(tmp_path / "q4" / "ckpt.pt")
    assert q["config"]["bits"] == 4
    sd = q["model_state_dict"]
    assert torch.equal(sd["fem_conv1_1.0.weight"], fp["fem.0.weight"])  # renamed main path
    assert torch.equal(sd["vrm_conv3_1.weight"], fp["vrm.4.weight"])
    shared = [k for k in fp if k in sd]
    assert shared and all(torch.equal(sd[k], fp[k]) for k in shared)
    inits = [v for k, v in sd.items() if k.endswith("init_state")]
    assert inits and all(float(v.min()) > 0 for v in inits)  # steps calibrated on the first batch
    assert summary["step"] == 2
    # same bit width: a fine-tuning stage loads the quantized weights as they are
    again = T.build_model(tiny_cfg(tmp_path / "x", bits=4))
    T.init_weights(again, str(tmp_path / "q4" / "ckpt.pt"))
    assert all(torch.equal(v, sd[k]) for k, v in again.state_dict().items())
    # fewer bits (progressive QAT): every tensor copied, the 2-bit steps fresh, the 8-bit kept
    low = T.build_model(tiny_cfg(tmp_path / "x", bits=2))
    report = T.init_weights(low, str(tmp_path / "q4" / "ckpt.pt"))
    low_sd = low.state_dict()
    assert all(torch.equal(low_sd[k], sd[k]) for k in low_sd if not k.endswith("init_state"))
    assert report["fresh"] and "fem_conv1_1.0" in report["fresh"] and "fem_conv1_1.0.act" in report["fresh"]
    assert not any("_2" in name for name in report["fresh"])  # side branches stay 8-bit, calibrated
    assert float(low_sd["fem_conv1_1.0.init_state"]) == 0 and float(low_sd["fem_conv1_2.0.init_state"]) == 1
    torch.manual_seed(0)
    low(torch.rand(1, 1, 8, 32, 32))  # the first batch calibrates them at 2 bits
    assert float(low.state_dict()["fem_conv1_1.0.init_state"]) == 1
    assert not torch.equal(low.state_dict()["fem_conv1_1.0.alpha"], sd["fem_conv1_1.0.alpha"])
    two = tmp_path / "two.pt"
    torch.save({"model_state_dict": low_sd, "config": low.config.to_dict()}, two)
    with pytest.raises(QSCIError, match="more bits"):
        T.init_weights(T.build_model(tiny_cfg(tmp_path / "y", bits=4)), str(two))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_ranks_agree(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, torch
        sys.path.insert(0, {str(REPO)!r})
        from training.config import TrainConfig
        from training.train import train
        cfg = TrainConfig(model_overrides={TINY!r}, data="images", crop=32, batch=2, lr=1e-3,
                          warmup_steps=1, max_steps=3, num_workers=0, log_every=1, eval_scenes=[],
                          final_eval=False, progress=False, threads=1, device="cpu",
                          out={str(tmp_path / "ddp")!r})
        s = train(cfg)
        torch.save(s["model"].state_dict(), {str(tmp_path)!r} + f"/rank{{os.environ['RANK']}}.pt")
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)
    ckpt = load_checkpoint(tmp_path / "ddp" / "ckpt.pt")
    assert ckpt["step"] == 3 and ckpt["samples"] == 3 * 2 * 2  # both ranks' samples counted


def test_evaluation_logged_with_step(tmp_path):
    cfg = tiny_cfg(tmp_path / "ev", max_steps=1, eval_scenes=["drop8"], final_eval=True)
    summary = T.train(cfg)
    (step, res), = summary["evals"]
    assert step == 1 and set(res["scenes"]) == {"drop8"} and res["mask"] == "quantized_sci"
    records = [json.loads(line) for line in (tmp_path / "ev" / "log.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 1 and records[-1]["eval"]["mean"]["psnr"] == res["mean"]["psnr"]
    assert not list((tmp_path / "ev" / "eval").glob("*.pt"))  # temporary model files removed


def test_cli_run_then_resume_auto(tmp_path):
    out = str(tmp_path / "cli")
    common = ["--preset", "smoke", "--out", out, "--max-steps", "3", "--threads", "1", "--device", "cpu"]
    assert T.main(common + ["--stop-step", "1"]) == 0
    assert load_checkpoint(tmp_path / "cli" / "ckpt.pt")["step"] == 1
    assert T.main(common + ["--resume", "auto"]) == 0  # stop_step is not carried over
    assert load_checkpoint(tmp_path / "cli" / "ckpt.pt")["step"] == 3
    assert T.main(["--preset", "no_such_preset"]) == 2  # user errors: one line, exit code 2


def test_fixed_mask_windows_and_video_clips():
    fixed = load_fixed_mask("quantized_sci", 8)  # (8, 256, 256)
    ds = ClipDataset(tiny_cfg("unused", crop=40), fixed_mask=fixed)
    x0, x = ds[0]
    assert x0.shape == (1, 8, 40, 40) and x.shape == (8, 40, 40) and torch.isfinite(x0).all()
    win = crop_mask(fixed, 300, np.random.default_rng(0))  # larger than the mask: tiled
    assert win.shape == (8, 300, 300) and set(np.unique(win)) <= {0.0, 1.0}
    video = np.random.default_rng(0).integers(0, 256, (20, 90, 120), dtype=np.uint8)  # (F, H, W)
    clip = FrameSource([video], (0.6, 1.2)).sample(np.random.default_rng(1), 8, 64)
    assert clip.shape == (8, 64, 64) and clip.dtype == np.float32 and 0 <= clip.min() <= clip.max() <= 1


def test_bench_times_the_training_step(monkeypatch):
    """`python -m training.bench` times `train.train_step` itself, with the run's optimizer and rate."""
    from training import bench

    real, seen = bench.train_step, []
    monkeypatch.setattr(bench, "train_step", lambda *a: seen.append((type(a[1]).__name__, a[4])) or real(*a))
    cfg = TrainConfig(model_preset="t", crop=32, batch=1, data="images").validate()
    out = bench.bench_model(cfg, steps=2, warmup=1, device=torch.device("cpu"), amp=False)
    assert seen == [("Adam", cfg.lr)] * 3 and out["batch"] == 1 and out["samples_per_s"] > 0


def test_distillation_target_and_teacher_checks(tmp_path):
    T.train(tiny_cfg(tmp_path / "fp", max_steps=2))
    fp_path = str(tmp_path / "fp" / "ckpt.pt")
    student = T.build_model(tiny_cfg(tmp_path / "x", bits=4))
    teacher = T.load_teacher(tiny_cfg(tmp_path / "x", bits=4, distill_from=fp_path), student, torch.device("cpu"))
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    x0, x = torch.rand(2, 1, 8, 16, 16), torch.rand(2, 8, 16, 16)
    with torch.no_grad():
        t = teacher(x0)
    assert torch.equal(T.distilled_target(teacher, x0, x, 0.0), x)
    assert torch.allclose(T.distilled_target(teacher, x0, x, 1.0), t)
    assert torch.allclose(T.distilled_target(teacher, x0, x, 0.25), 0.75 * x + 0.25 * t)
    # a QAT run that distils trains and saves; a quantized teacher is refused by name
    summary = T.train(tiny_cfg(tmp_path / "q4", bits=4, init_from=fp_path, distill_from=fp_path,
                               step_init="mse", max_steps=2))
    assert summary["step"] == 2 and math.isfinite(summary["final_loss"])
    with pytest.raises(QSCIError, match="teacher must be full precision"):
        T.load_teacher(tiny_cfg(tmp_path / "x", bits=4, distill_from=str(tmp_path / "q4" / "ckpt.pt")),
                       student, torch.device("cpu"))
    with pytest.raises(QSCIError, match="distill_weight must lie in"):
        tiny_cfg(tmp_path / "x", bits=4, distill_weight=1.5).validate()


def test_refit_keeps_the_learning_rate_continuous_and_ends_the_cosine_at_the_new_length():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-5, warmup_steps=10, max_steps=110)
    before = T.get_lr(60, cfg)
    assert T.refit_schedule(cfg, 60, 200)  # slower than fitted: the rest of the cosine stretches
    assert (cfg.refit_step, cfg.max_steps) == (60, 200) and cfg.refit_progress == pytest.approx(0.5)
    assert T.get_lr(60, cfg) == pytest.approx(before)  # continuous at the re-fit
    lrs = [T.get_lr(s, cfg) for s in range(60, 210)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[140] == pytest.approx(1e-5)  # ends at step 200
    assert T.schedule_progress(130, cfg) == pytest.approx(0.75)
    assert not T.refit_schedule(cfg, 100, 202)  # within 3% of the steps left: left alone
    assert T.refit_schedule(cfg, 100, 150) and T.get_lr(150, cfg) == pytest.approx(1e-5)  # faster: shrinks
    assert not T.refit_schedule(cfg, 5, 500)  # during warm-up nothing to re-fit


def test_a_budget_run_refits_its_schedule_to_its_pace(tmp_path, monkeypatch):
    """The probe fits max_steps in the first steps; a later look at the pace re-fits it (here the
    clock runs 4x faster after the probe, so the run must shorten its schedule)."""
    clock = {"t": 1000.0, "dt": 0.5}

    def fake_time():
        clock["t"] += clock["dt"]
        return clock["t"]

    cfg = tiny_cfg(tmp_path / "run", max_steps=0, minutes=10.0, warmup_steps=2, final_eval=False)
    monkeypatch.setattr(T, "REFIT_MIN_S", 0.0)  # look every 10% of the budget
    real_step = T.train_step

    def step_and_slow_down(*a, **k):
        out = real_step(*a, **k)
        if cfg.budget_fitted:
            clock["dt"] = 2.0
        return out

    monkeypatch.setattr(T.time, "time", fake_time)
    monkeypatch.setattr(T, "train_step", step_and_slow_down)
    summary = T.train(cfg)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["budget_fitted"] and saved["refit_step"] > 0 and 0 < saved["refit_progress"] < 1
    assert summary["stop_reason"] in ("max_steps", "time budget")


def test_campaign_ladder_starts_each_width_from_the_next_wider(capsys):
    from training import campaign

    assert campaign.qat_starts([8, 4, 3, 2], ladder=True) == {8: 32, 4: 32, 3: 4, 2: 3}
    assert campaign.qat_starts([8, 4, 2], ladder=True) == {8: 32, 4: 32, 2: 4}
    assert campaign.qat_starts([8, 4, 3, 2], ladder=False) == {8: 32, 4: 32, 3: 32, 2: 32}
    assert campaign.main(["--dry-run", "--ladder", "true", "--parallel", "2", "--runs", "r"]) == 0
    waves = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wave ")]
    by_wave = {}
    for line in waves:
        by_wave.setdefault(line.split(":")[0], []).append(line)
    assert list(by_wave) == ["wave 0", "wave 1", "wave 2", "wave 3"]  # fp32, (8, 4), 3, 2
    assert len(by_wave["wave 1"]) == 2
    assert "--init-from r/t_gap_qat4/ckpt.pt" in by_wave["wave 2"][0]
    assert "--init-from r/t_gap_qat3/ckpt.pt" in by_wave["wave 3"][0]
    assert all("--distill-from r/t_gap_fp32/ckpt.pt" in line for line in waves[1:])
