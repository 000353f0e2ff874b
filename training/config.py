"""Training configuration: one flat dataclass, JSON presets, command-line overrides.

The resolved config is written next to every run's outputs and stored inside every checkpoint,
so a run can be resumed (or repeated) from its files alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qsci.data import EVAL_SCENES
from qsci.errors import QSCIError
from qsci.quant.lsq import STEP_INITS

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
BITS = (32, 8, 4, 3, 2)  # 32 = full precision


@dataclass
class TrainConfig:
    # model: registry name is qsci-<preset>-fp32 | qsci-<preset>-<bits>bit
    model_preset: str = "t"  # t | s | b
    family: str = ""  # "" = the paper's network | "gap" = GAP-TV warm start (qsci-<preset>-gap-<bits>)
    bits: int = 32
    model_overrides: dict = field(default_factory=dict)  # passed to qsci.models.create_model
    init_from: str = ""  # weights to start from: full precision for QAT (spec 5), or same bits to fine-tune
    zero_last: bool = False  # zero the output conv(s) after --init-from: a residual model starts at its input
    step_init: str = "lsq"  # first quantizer steps: "lsq" (the paper's) | "mse" (least-error range + zero point)
    distill_from: str = ""  # full-precision checkpoint whose outputs the QAT model also learns
    distill_weight: float = 0.8  # target = (1 - w) * ground truth + w * teacher output (with distill_from)
    # data
    data: str = "builtin"  # "builtin" | "images" | path to DAVIS 2017 (JPEGImages/480p/<video>/*.jpg)
    cr: int = 8  # frames per snapshot
    crop: int = 128
    crop_schedule: list = field(default_factory=list)  # [[start_step, crop], ...] overrides `crop`
    max_frame_stride: int = 1  # 1 = consecutive frames; >1 also samples faster motion
    motion: float = 1.0  # speed scale of the animated stills (1.0 = synthetic.animate's defaults)
    scale_min: float = 0.6  # random rescale of the source before cropping
    scale_max: float = 1.2
    mask: str = "random"  # "random" (new binary mask per sample) | "quantized_sci" | path to a mask file
    read_noise_std: float = 0.0
    shot_noise_photons: float = 0.0  # 0 = no shot noise
    num_workers: int = -1  # loader processes per rank; -1 = from the CPU count
    prefetch_factor: int = 4
    # optimisation
    batch: int = 4  # per process
    optimizer: str = "adam"  # "adam" | "adamw"
    lr: float = 1e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.0
    warmup_steps: int = 100
    max_steps: int = 10000  # length of the cosine schedule; 0 = fit it to `minutes`
    # where the schedule was last re-fitted to the time left (a budget-fitted run re-measures its
    # pace): from refit_step on, the cosine runs from refit_progress to its end at max_steps
    refit_step: int = 0
    refit_progress: float = 0.0
    budget_fitted: bool = False  # max_steps came from the budget probe (so it may be re-fitted)
    grad_clip: float = 1.0  # 0 = off
    loss: str = "mse"  # "mse" | "rmse" | "psnr" (per-crop 1/MSE weights: train.compute_loss)
    amp: str = "auto"  # "auto" (bf16 on CUDA only) | "bf16" | "off"
    seed: int = 0
    # budget, logging, checkpoints
    minutes: float = 0.0  # wall-clock budget; 0 = none. Stops in time, saves, evaluates.
    stop_step: int = 0  # stop (and save) at this step; the schedule still runs to max_steps
    out: str = "runs/default"
    log_every: int = 10
    save_every_minutes: float = 10.0
    eval_every: int = 0  # steps; 0 = evaluate only at the end
    eval_scenes: list = field(default_factory=lambda: list(EVAL_SCENES))
    final_eval: bool = True
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    threads: int = 0  # torch CPU threads; 0 = leave torch's default
    progress: bool = True
    tensorboard: bool = False  # only if tensorboard is installed

    @property
    def model_name(self) -> str:
        family = f"{self.family}-" if self.family else ""
        return f"qsci-{self.model_preset}-{family}{'fp32' if self.bits == 32 else f'{self.bits}bit'}"

    def crop_at(self, step: int) -> int:
        """Crop size used at `step` (the schedule is a list of [start_step, crop] pairs)."""
        crop = self.crop
        for start, size in sorted(self.crop_schedule):
            if step >= start:
                crop = int(size)
        return crop

    def validate(self) -> "TrainConfig":
        if self.bits not in BITS:
            raise QSCIError(f"bits must be one of {BITS}, got {self.bits}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise QSCIError(f"distill_weight must lie in [0, 1], got {self.distill_weight}")
        if self.step_init not in STEP_INITS:
            raise QSCIError(f"step_init must be one of {', '.join(STEP_INITS)}, got {self.step_init!r}")
        for name in ("optimizer", "loss", "amp", "device"):
            allowed = {"optimizer": ("adam", "adamw"), "loss": ("mse", "rmse", "psnr"),
                       "amp": ("auto", "bf16", "off"), "device": ("auto", "cpu", "cuda")}[name]
            if getattr(self, name) not in allowed:
                raise QSCIError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        sizes = [self.crop] + [int(c) for _, c in self.crop_schedule]
        if min(sizes) < 8 or any(s % 4 for s in sizes):
            raise QSCIError(f"crop sizes must be multiples of 4 and >= 8, got {sizes}")
        if self.batch < 1 or self.cr < 1:
            raise QSCIError("batch and cr must be positive")
        if self.max_steps <= 0 and self.minutes <= 0:
            raise QSCIError("max_steps 0 (fit to the budget) needs --minutes")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise QSCIError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**d)


def list_presets() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_json(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise QSCIError(f"config file not found: {p}")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise QSCIError(f"{p.name}: not valid JSON ({exc})") from None


def preset_path(name: str) -> Path:
    p = CONFIG_DIR / f"{name}.json"
    if not p.is_file():
        raise QSCIError(f"unknown preset {name!r}; choose from {', '.join(list_presets())}")
    return p


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")


def parse_value(text: str, default: Any) -> Any:
    """Command-line text -> the type of the field's default (JSON for lists/dicts)."""
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise QSCIError(f"expected true/false, got {text!r}")
    if isinstance(default, (list, dict)):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            if isinstance(default, list):  # "a,b,c" for simple lists
                return [s for s in text.split(",") if s]
            raise QSCIError(f"expected JSON, got {text!r}") from None
    try:
        return type(default)(text)
    except ValueError:
        raise QSCIError(f"expected {type(default).__name__}, got {text!r}") from None


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train a Q-SCI model (full precision, or QAT from a full-precision checkpoint).",
    )
    p.add_argument("--config", help="JSON config file")
    p.add_argument("--preset", help=f"config from training/configs ({', '.join(list_presets())})")
    p.add_argument("--resume", help="checkpoint to continue from, or 'auto' (<out>/ckpt.pt if present)")
    p.add_argument("--batch-size", dest="batch", help=argparse.SUPPRESS)  # alias
    for f in dataclasses.fields(TrainConfig):
        if f.name == "batch":
            p.add_argument("--batch", dest="batch", metavar="N", help="per-process batch, default 4")
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(TrainConfig(), f.name)
        p.add_argument(flag, dest=f.name, metavar=f.name.upper(), default=None,
                       help=f"default {json.dumps(default)}")
    return p


def resolve(args: argparse.Namespace, base: dict | None = None) -> TrainConfig:
    """Defaults < --preset < --config file < explicit flags.

    When resuming, `base` is the checkpoint's config and replaces the preset and config file
    (those only located the run): the schedule continues as it was, explicit flags still apply.
    """
    d = TrainConfig().to_dict()
    if base:
        d.update(base)
    else:
        if getattr(args, "preset", None):
            d.update(load_json(preset_path(args.preset)))
        if getattr(args, "config", None):
            d.update(load_json(args.config))
    defaults = TrainConfig().to_dict()
    for name, default in defaults.items():
        text = getattr(args, name, None)
        if text is not None:
            d[name] = parse_value(str(text), default)
    return TrainConfig.from_dict(d).validate()
