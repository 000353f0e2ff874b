"""Model registry (timm style): tiny preset functions + `register_model`, `create_model`.

Names: `qsci-<preset>-fp32` and `qsci-<preset>-<b>bit` for presets t, s, b and b in 8, 4, 3, 2
(the paper's networks), and `qsci-<preset>-gap-<fp32|b bit>` for the GAP-TV warm-start family
(our extension: GAP-TV initial estimate, global residual, final data-consistency step,
per-tensor activation steps so every bit width runs on integer kernels).
"""

from __future__ import annotations

import difflib
from dataclasses import fields
from typing import Callable

import torch.nn as nn

from qsci.errors import QSCIError
from qsci.models.config import ModelConfig
from qsci.models.efficientsci import EfficientSCI
from qsci.models.qsci_net import QSCINet

_REGISTRY: dict[str, Callable[..., ModelConfig]] = {}


def register_model(name: str) -> Callable:
    """Decorator: register a function `(**overrides) -> ModelConfig` under `name`."""

    def deco(fn: Callable[..., ModelConfig]) -> Callable[..., ModelConfig]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    return list(_REGISTRY)


def build_model(config: ModelConfig | dict) -> nn.Module:
    """The network a config describes (side-branch Q-SCI below 8 bits, else EfficientSCI)."""
    cfg = ModelConfig.from_dict(config) if isinstance(config, dict) else config
    return (QSCINet if cfg.bits < 8 else EfficientSCI)(cfg)


def get_config(name: str, **overrides) -> ModelConfig:
    """The ModelConfig of a registered name with `overrides` (None values ignored)."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(_REGISTRY)}"
        raise QSCIError(f"unknown model {name!r}{hint}")
    known = {f.name for f in fields(ModelConfig)}
    kept = {k: v for k, v in overrides.items() if v is not None}
    bad = sorted(set(kept) - known)
    if bad:
        raise QSCIError(f"unknown model options {bad}; allowed: {sorted(known)}")
    return _REGISTRY[name](**kept)


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered model; `overrides` replace ModelConfig fields (None = keep preset)."""
    return build_model(get_config(name, **overrides))


def _cfg(preset: str, bits: int, overrides: dict) -> ModelConfig:
    return ModelConfig(**{"preset": preset, "bits": bits, **overrides})


WARM_START = {"init": "gaptv", "residual": True, "dc": True, "per_channel_act": False}


def _gap(preset: str, bits: int, overrides: dict) -> ModelConfig:
    return ModelConfig(**{"preset": preset, "bits": bits, **WARM_START, **overrides})


@register_model("qsci-t-fp32")
def qsci_t_fp32(**kw): return _cfg("t", 32, kw)
@register_model("qsci-t-8bit")
def qsci_t_8bit(**kw): return _cfg("t", 8, kw)
@register_model("qsci-t-4bit")
def qsci_t_4bit(**kw): return _cfg("t", 4, kw)
@register_model("qsci-t-3bit")
def qsci_t_3bit(**kw): return _cfg("t", 3, kw)
@register_model("qsci-t-2bit")
def qsci_t_2bit(**kw): return _cfg("t", 2, kw)


@register_model("qsci-s-fp32")
def qsci_s_fp32(**kw): return _cfg("s", 32, kw)
@register_model("qsci-s-8bit")
def qsci_s_8bit(**kw): return _cfg("s", 8, kw)
@register_model("qsci-s-4bit")
def qsci_s_4bit(**kw): return _cfg("s", 4, kw)
@register_model("qsci-s-3bit")
def qsci_s_3bit(**kw): return _cfg("s", 3, kw)
@register_model("qsci-s-2bit")
def qsci_s_2bit(**kw): return _cfg("s", 2, kw)


@register_model("qsci-b-fp32")
def qsci_b_fp32(**kw): return _cfg("b", 32, kw)
@register_model("qsci-b-8bit")
def qsci_b_8bit(**kw): return _cfg("b", 8, kw)
@register_model("qsci-b-4bit")
def qsci_b_4bit(**kw): return _cfg("b", 4, kw)
@register_model("qsci-b-3bit")
def qsci_b_3bit(**kw): return _cfg("b", 3, kw)
@register_model("qsci-b-2bit")
def qsci_b_2bit(**kw): return _cfg("b", 2, kw)


@register_model("qsci-t-gap-fp32")
def qsci_t_gap_fp32(**kw): return _gap("t", 32, kw)
@register_model("qsci-t-gap-8bit")
def qsci_t_gap_8bit(**kw): return _gap("t", 8, kw)
@register_model("qsci-t-gap-4bit")
def qsci_t_gap_4bit(**kw): return _gap("t", 4, kw)
@register_model("qsci-t-gap-3bit")
def qsci_t_gap_3bit(**kw): return _gap("t", 3, kw)
@register_model("qsci-t-gap-2bit")
def qsci_t_gap_2bit(**kw): return _gap("t", 2, kw)


@register_model("qsci-s-gap-fp32")
def qsci_s_gap_fp32(**kw): return _gap("s", 32, kw)
@register_model("qsci-s-gap-8bit")
def qsci_s_gap_8bit(**kw): return _gap("s", 8, kw)
@register_model("qsci-s-gap-4bit")
def qsci_s_gap_4bit(**kw): return _gap("s", 4, kw)
@register_model("qsci-s-gap-3bit")
def qsci_s_gap_3bit(**kw): return _gap("s", 3, kw)
@register_model("qsci-s-gap-2bit")
def qsci_s_gap_2bit(**kw): return _gap("s", 2, kw)
