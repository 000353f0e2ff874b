"""Train a Q-SCI model: full precision, or QAT of a b-bit model from a full-precision checkpoint.

    python -m training.train --preset t_fp32 --out runs/t_fp32 --minutes 30
    python -m training.train --preset t_qat4 --init-from runs/t_fp32/ckpt.pt --out runs/t_qat4
    python -m training.train --resume runs/t_fp32/ckpt.pt          # continue the exact schedule
    torchrun --nproc_per_node 4 -m training.train --preset s_fp32 --out runs/s_fp32

One process per GPU under torchrun (DDP, rank 0 logs and saves); plain `python` is one process.
Every run writes `<out>/config.json` (the resolved config), `<out>/log.jsonl` (step, loss, lr,
samples/s, eval metrics) and `<out>/ckpt.pt` (atomic; every `save_every_minutes`, on
SIGTERM/SIGINT and at the end). The data stream is a function of (seed, rank, sample index), so
a resumed run continues with the very batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm import tqdm

from qsci.errors import QSCIError
from qsci.models.efficientsci import zero_last_layer
from qsci.quant.lsq import recalibrate_steps, set_step_init
from training import distributed as D
from training.checkpointing import load_checkpoint, save_checkpoint, set_rng_state, strip_ddp_prefix
from training.config import TrainConfig, build_arg_parser, resolve, save_config
from training.data import make_loader


# --------------------------------------------------------------------------- pieces


REFIT_MIN_S = 300.0  # a budget-fitted run looks at its pace every 10% of the budget, at least this far apart


def schedule_progress(step: int, cfg: TrainConfig) -> float:
    """How far along the cosine `step` is, 0..1 (after a re-fit: from where it was then)."""
    if cfg.refit_step > cfg.warmup_steps and step >= cfg.refit_step and cfg.max_steps > cfg.refit_step:
        p = cfg.refit_progress + (1.0 - cfg.refit_progress) * (step - cfg.refit_step) / (cfg.max_steps - cfg.refit_step)
    else:
        p = (step - cfg.warmup_steps) / (cfg.max_steps - cfg.warmup_steps)
    return min(1.0, max(0.0, p))


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to `lr`, then cosine decay to `min_lr` at `max_steps` (nanoGPT-style)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.max_steps <= cfg.warmup_steps:  # schedule length not decided yet (budget probe)
        return cfg.lr
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * schedule_progress(step, cfg))) * (cfg.lr - cfg.min_lr)


def refit_schedule(cfg: TrainConfig, step: int, new_max: int) -> bool:
    """Stretch or shrink the rest of a budget-fitted cosine to end at `new_max` (where the time
    left runs out at the current pace), the learning rate continuous: the first probe runs in the
    first minutes, and on a shared machine the pace changes (a run fitted under load hit max_steps
    20 minutes early). Changes under 3% of the steps left are ignored. True if changed."""
    if step <= cfg.warmup_steps or step >= cfg.max_steps or new_max <= step:
        return False
    if abs(new_max - cfg.max_steps) <= 0.03 * (cfg.max_steps - step):
        return False
    cfg.refit_progress, cfg.refit_step, cfg.max_steps = schedule_progress(step, cfg), step, new_max
    return True


def build_model(cfg: TrainConfig, model_config: dict | None = None) -> torch.nn.Module:
    """From a stored ModelConfig dict (resume) or from the registry name plus overrides."""
    from qsci import models

    if model_config is not None:
        return models.build_model(models.ModelConfig.from_dict(dict(model_config)))
    return models.create_model(cfg.model_name, **cfg.model_overrides)


def init_weights(model: torch.nn.Module, path: str) -> dict:
    """Weights from a checkpoint, with a fresh optimizer and schedule.

    Full precision -> b bits: QAT start (spec 5): weights copied, side branches and quantizer
    steps fresh (the steps calibrate on the first batch). Same bit width: a fine-tuning stage
    (e.g. the paper's last epochs at a lower lr), loaded as it is. More bits (below 8) -> fewer:
    progressive QAT, loaded as it is with the b-bit steps recalibrated.
    """
    from qsci.models.qsci_net import init_from_fp

    ckpt = load_checkpoint(path)
    sd = strip_ddp_prefix(ckpt["model_state_dict"])
    src_bits = int(ckpt["config"].get("bits", 32)) if isinstance(ckpt.get("config"), dict) else 32
    bits = model.config.bits
    if src_bits == bits or bits < src_bits < 8:  # the same graph: every tensor loads as it is
        try:
            model.load_state_dict(sd)
        except RuntimeError as exc:
            raise QSCIError(f"--init-from {path}: does not fit {model.config.name} "
                            f"({str(exc).splitlines()[0]})") from None
        # progressive QAT (e.g. 4 -> 3 bits): the b-bit quantizers calibrate again on the first batch
        return {"copied": list(sd), "fresh": recalibrate_steps(model, bits) if src_bits != bits else []}
    if src_bits != 32:
        raise QSCIError(f"--init-from {path}: a {src_bits}-bit checkpoint cannot start a "
                        f"{bits}-bit model; use a full-precision one or a quantized "
                        f"one of more bits (below 8)")
    report = init_from_fp(model, sd)
    if len(report["copied"]) < len(sd):  # every full-precision tensor must land somewhere
        raise QSCIError(f"--init-from {path}: only {len(report['copied'])} of {len(sd)} tensors "
                        f"fit the {model.config.name} model (different sizes?)")
    return report


def load_teacher(cfg: TrainConfig, student: torch.nn.Module, device) -> torch.nn.Module | None:
    """The full-precision model a QAT run distils from (`--distill-from`), frozen, or None.

    Why: on the synthetic crops most of the loss against ground truth is content the full-precision
    network cannot fix either; the teacher's output points at what quantization lost.
    """
    if not cfg.distill_from:
        return None
    ckpt = load_checkpoint(cfg.distill_from)
    teacher = build_model(cfg, ckpt.get("config"))
    if int(teacher.config.bits) != 32:
        raise QSCIError(f"--distill-from {cfg.distill_from}: a {teacher.config.bits}-bit model; "
                        "the teacher must be full precision")
    if (teacher.config.init, teacher.config.residual) != (student.config.init, student.config.residual):
        raise QSCIError(f"--distill-from {cfg.distill_from}: its input ({teacher.config.init}) or residual "
                        f"differs from the {student.config.name} model being trained")
    teacher.load_state_dict(strip_ddp_prefix(ckpt["model_state_dict"]))
    return teacher.to(device).eval().requires_grad_(False)


@torch.no_grad()
def distilled_target(teacher: torch.nn.Module, x0: torch.Tensor, x: torch.Tensor, weight: float) -> torch.Tensor:
    """`(1 - weight) * x + weight * teacher(x0)`: its MSE has the gradient of the weighted sum of
    the ground-truth and teacher losses."""
    return torch.lerp(x, teacher(x0).float(), weight)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def compute_loss(out: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """`mse` / `rmse` over the batch, or `psnr`: the crops' MSEs averaged with weights
    1 / (each crop's own MSE), held constant.

    Why `psnr`: the benchmark averages PSNR over scenes, so an easy 37 dB scene counts as much
    as a hard 22 dB one, while a batch MSE is dominated by the hard crops. This weighted mean has
    the gradient of the mean per-crop log-MSE (i.e. of minus the mean PSNR, up to a constant
    factor) at the batch MSE's scale, so learning rates and gradient clipping carry over.
    """
    err = (out.float() - x).square()  # (B, T, H, W); fp32 even under autocast
    if kind == "psnr":
        per_crop = err.flatten(1).mean(1)
        w = 1.0 / (per_crop.detach() + 1e-8)
        return (per_crop * w).sum() / w.sum()
    mse = err.mean()
    return mse.sqrt() if kind == "rmse" else mse


def evaluate_model(raw: torch.nn.Module, cfg: TrainConfig, step: int) -> dict | None:
    """Benchmark scenes with the Q-SCI mask through `qsci.evaluate` (the CLI's protocol), in memory.

    The runner gets a CPU copy rebuilt from the config and state dict, exactly what the CLI loads
    from a saved file; the training model itself is not touched.
    """
    if not cfg.eval_scenes:
        return None
    from qsci.evaluate import evaluate
    from qsci.runners import NetworkRunner

    snapshot = build_model(cfg, raw.config.to_dict())
    snapshot.load_state_dict({k: v.detach().cpu() for k, v in raw.state_dict().items()})
    result = evaluate(NetworkRunner(cfg.model_name, snapshot), list(cfg.eval_scenes), mask="quantized_sci")
    scenes = ", ".join(f"{k} {v['psnr']:.2f}" for k, v in result["scenes"].items())
    tqdm.write(f"eval step {step}: PSNR {result['mean']['psnr']:.2f} dB, SSIM {result['mean']['ssim']:.4f} "
               f"({scenes})", file=sys.stderr)
    return result


class StopSignal:
    """SIGTERM/SIGINT set a flag; the loop saves a checkpoint and exits at the next step."""

    def __init__(self):
        self.requested = False
        self._old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. some test runners)
                pass

    def _handle(self, signum, frame):
        if self.requested:  # second signal: give up waiting
            raise KeyboardInterrupt
        self.requested = True

    def restore(self):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Logger:
    """JSONL log (+ TensorBoard if installed and asked for), rank 0 only."""

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool, append: bool):
        self.enabled = enabled
        self.fh = open(out_dir / "log.jsonl", "a" if append else "w") if enabled else None
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tb"))
            except ImportError:
                print("note: tensorboard is not installed; logging to log.jsonl only", file=sys.stderr)

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(k, v, record["step"])

    def close(self) -> None:
        if self.fh:
            self.fh.close()
        if self.tb is not None:
            self.tb.close()


# --------------------------------------------------------------------------- the loop's parts


def setup(cfg: TrainConfig) -> tuple[D.DistInfo, Path]:
    """This process's device, threads, output folder (rank 0 writes config.json) and seed."""
    dist = D.setup(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if dist.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # crop sizes are fixed per stage: autotune once
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out_dir = Path(cfg.out)
    if dist.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.json")
    torch.manual_seed(cfg.seed + dist.rank)
    return dist, out_dir


def prepare_model(cfg: TrainConfig, resume: dict | None, dist: D.DistInfo):
    """(model, optimizer, step, samples): resumed, QAT-initialised from a full-precision
    checkpoint, or fresh; on the device, in training mode."""
    step, samples = 0, 0
    if resume is not None:
        model = build_model(cfg, resume.get("config"))
        model.load_state_dict(strip_ddp_prefix(resume["model_state_dict"]))
        step, samples = int(resume["step"]), int(resume["samples"])
    else:
        model = build_model(cfg)
        set_step_init(model, cfg.step_init)
        if cfg.init_from:
            report = init_weights(model, cfg.init_from)
            if cfg.zero_last:
                zero_last_layer(model)
            if dist.main:
                print(f"weights from {cfg.init_from}: {len(report['copied'])} tensors copied, "
                      f"{len(report['fresh'])} fresh" + (", output conv zeroed" if cfg.zero_last else ""),
                      file=sys.stderr)
        elif cfg.bits != 32:
            raise QSCIError(f"QAT ({cfg.bits}-bit) needs --init-from a full-precision checkpoint")
    model.to(dist.device).train()
    optimizer = make_optimizer(model, cfg)
    if resume is not None:
        if resume.get("optimizer"):
            optimizer.load_state_dict(resume["optimizer"])
        set_rng_state(resume["rng"])
    return model, optimizer, step, samples


def wrap_for_ddp(model: torch.nn.Module, batch, cfg: TrainConfig, optimizer, dist: D.DistInfo, autocast):
    """The model as the loop calls it (DDP-wrapped under torchrun).

    The first batch calibrates the LSQ steps (they initialise on the first forward) and finds
    parameters without gradients, before DDP copies rank 0's state to every rank.
    """
    find_unused = False
    if dist.enabled:
        with autocast():
            probe = compute_loss(model(batch[0]), batch[1], cfg.loss)
        probe.backward()
        find_unused = any(p.requires_grad and p.grad is None for p in model.parameters())
        optimizer.zero_grad(set_to_none=True)
    return D.wrap(model, dist, find_unused)


def train_step(model: torch.nn.Module, optimizer, batch, cfg: TrainConfig, lr: float, autocast):
    """One optimizer step at learning rate `lr`; returns (loss, gradient norm before clipping)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    x0, x = batch
    with autocast():
        out = model(x0)  # (B, T, H, W)
    loss = compute_loss(out, x, cfg.loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    # the norm is computed either way (inf = no clipping) and logged: a cheap health signal
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
    optimizer.step()
    return loss, grad_norm


def evaluate_and_log(raw: torch.nn.Module, cfg: TrainConfig, step: int, logger: Logger, summary: dict) -> None:
    """Score the model (rank 0) and record it in log.jsonl and the summary."""
    res = evaluate_model(raw, cfg, step)
    if res is not None:
        logger.log({"step": step, "eval": res})
        summary["evals"].append((step, res))


def save(out_dir: Path, raw: torch.nn.Module, optimizer, step: int, samples: int, cfg: TrainConfig) -> Path:
    """The training state, atomically, to <out>/ckpt.pt (rank 0)."""
    return save_checkpoint(out_dir / "ckpt.pt", model=raw, model_config=raw.config.to_dict(),
                           optimizer=optimizer, step=step, samples=samples, train_config=cfg.to_dict())


# --------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, resume: dict | None = None) -> dict:
    """Run (or continue) one training run; returns a summary (step, losses, eval)."""
    t_start = time.time()
    dist, out_dir = setup(cfg)
    main_rank = dist.main
    model, optimizer, step, samples = prepare_model(cfg, resume, dist)

    use_amp = cfg.amp == "bf16" or (cfg.amp == "auto" and dist.device.type == "cuda")
    autocast = (lambda: torch.autocast(dist.device.type, dtype=torch.bfloat16)) if use_amp else nullcontext
    loader = make_loader(cfg, dist.rank, step, pin_memory=dist.device.type == "cuda",
                         init=(model.config.init, model.config.init_iters))
    batches = iter(loader)

    teacher = load_teacher(cfg, model, dist.device)

    def next_batch():
        x0, x = next(batches)  # (B, 1, T, H, W), (B, T, H, W)
        x0, x = x0.to(dist.device, non_blocking=True), x.to(dist.device, non_blocking=True)
        return (x0, distilled_target(teacher, x0, x, cfg.distill_weight)) if teacher is not None else (x0, x)

    batch = next_batch()
    raw = model
    model = wrap_for_ddp(model, batch, cfg, optimizer, dist, autocast)

    logger = Logger(out_dir, main_rank, cfg.tensorboard, append=resume is not None)
    stopper = StopSignal()
    budget_s = cfg.minutes * 60.0 if cfg.minutes > 0 else math.inf
    # time kept back from --minutes for the final save and evaluation (re-measured at each eval)
    eval_reserve_s = (30.0 if dist.device.type == "cuda" else 120.0) if cfg.final_eval and cfg.eval_scenes else 5.0
    probe_at = step + 10 if cfg.max_steps <= 0 else None
    fit_mark = (time.time(), step)  # (time, step) of the last look at the pace
    refit_every_s = max(REFIT_MIN_S, 0.1 * budget_s) if budget_s < math.inf else math.inf
    refit_every = 20 if cfg.budget_fitted else 10**9  # steps between looks (a resumed fitted run: soon)
    last_save = time.time()
    summary = {"losses": [], "evals": [], "start_step": step}
    bar = tqdm(total=cfg.max_steps or None, initial=step, disable=not (main_rank and cfg.progress),
               dynamic_ncols=True, desc=cfg.model_name)
    t_log, steps_since_log = time.time(), 0
    t_loop = time.time()
    loss = None
    stop_reason = "max_steps"
    while cfg.max_steps <= 0 or step < cfg.max_steps:
        lr = get_lr(step, cfg)
        loss, grad_norm = train_step(model, optimizer, batch, cfg, lr, autocast)
        step += 1
        samples += cfg.batch * dist.world
        steps_since_log += 1
        batch = next_batch()  # the loader's workers already prepared it

        if step % cfg.log_every == 0 or step == cfg.max_steps:
            dt = time.time() - t_log
            rec = {"step": step, "loss": loss.item(), "lr": lr, "grad_norm": float(grad_norm),
                   "crop": cfg.crop_at(step - 1),
                   "samples_per_s": steps_since_log * cfg.batch * dist.world / max(dt, 1e-9),
                   "samples": samples, "elapsed_s": round(time.time() - t_start, 2)}
            logger.log(rec)
            summary["losses"].append((step, rec["loss"]))
            bar.set_postfix(loss=f"{rec['loss']:.4g}", lr=f"{lr:.2e}", sps=f"{rec['samples_per_s']:.1f}")
            t_log, steps_since_log = time.time(), 0
        bar.update(1)

        # Budget probe: after 10 steps (or 5 % of the budget), fit the cosine schedule to it.
        if probe_at is not None and D.any_flag(
                step >= probe_at or (time.time() - t_loop > 0.05 * budget_s and step > summary["start_step"] + 1),
                dist):
            per_step = (time.time() - t_loop) / max(step - summary["start_step"], 1)
            left = budget_s - (time.time() - t_start) - eval_reserve_s
            cfg.max_steps = D.broadcast_int(step + max(1, int(0.95 * left / per_step)), dist)
            cfg.budget_fitted, probe_at = True, None
            fit_mark = (time.time(), step)
            refit_every = D.broadcast_int(max(10, int(refit_every_s / per_step)), dist)  # steps: same on every rank
            bar.total = cfg.max_steps
            if main_rank:
                save_config(cfg, out_dir / "config.json")
                print(f"budget {cfg.minutes} min -> max_steps {cfg.max_steps}", file=sys.stderr)
        elif cfg.budget_fitted and budget_s < math.inf and step - fit_mark[1] >= refit_every:
            # the pace since the last look (rank 0's clock): re-fit the rest of the cosine to the time left
            per_step = (time.time() - fit_mark[0]) / max(step - fit_mark[1], 1)
            left = budget_s - (time.time() - t_start) - eval_reserve_s
            fit_mark = (time.time(), step)
            refit_every = D.broadcast_int(max(10, int(refit_every_s / per_step)), dist)
            if refit_schedule(cfg, step, D.broadcast_int(step + max(1, int(0.95 * left / per_step)), dist)):
                bar.total = cfg.max_steps
                if main_rank:
                    save_config(cfg, out_dir / "config.json")
                    print(f"pace {per_step:.2f} s/step: max_steps -> {cfg.max_steps} (lr {get_lr(step, cfg):.2e})",
                          file=sys.stderr)

        if cfg.eval_every and step % cfg.eval_every == 0 and step != cfg.max_steps:
            if main_rank:
                t_eval = time.time()
                evaluate_and_log(raw, cfg, step, logger, summary)
                # keep enough of the budget for the final save and evaluation
                eval_reserve_s = max(eval_reserve_s, 1.5 * (time.time() - t_eval) + 10.0)
            D.barrier(dist)

        over_time = time.time() - t_start + eval_reserve_s >= budget_s
        if D.any_flag(stopper.requested or over_time, dist):
            stop_reason = "signal" if stopper.requested else "time budget"
            break
        if cfg.stop_step and step >= cfg.stop_step:
            stop_reason = "stop_step"
            break
        if main_rank and time.time() - last_save >= cfg.save_every_minutes * 60.0:
            save(out_dir, raw, optimizer, step, samples, cfg)
            last_save = time.time()
    bar.close()
    stopper.restore()

    if main_rank:
        save(out_dir, raw, optimizer, step, samples, cfg)
        print(f"stopped at step {step} ({stop_reason}); saved {out_dir / 'ckpt.pt'}", file=sys.stderr)
        if cfg.final_eval and stop_reason in ("max_steps", "time budget"):
            evaluate_and_log(raw, cfg, step, logger, summary)
    D.barrier(dist)
    logger.close()
    summary.update(step=step, samples=samples, stop_reason=stop_reason,
                   final_loss=None if loss is None else float(loss.item()), model=raw)
    del batches, loader  # shut the workers down before the process group goes
    D.teardown(dist)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    try:
        resume = None
        if args.resume:
            path = args.resume
            if path == "auto":
                base = resolve(args)
                auto = Path(base.out) / "ckpt.pt"
                path = str(auto) if auto.is_file() else None
            if path:
                resume = load_checkpoint(path)
        base = None
        if resume is not None:
            base = dict(resume.get("train_config") or {})
            base["stop_step"] = 0  # a stop point applies to one invocation, not to its resumption
        cfg = resolve(args, base=base)
        summary = train(cfg, resume)
    except QSCIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if summary["stop_reason"] == "signal":
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
