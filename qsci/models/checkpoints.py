"""State dicts: the authors' released layouts and our own config-carrying files.

The authors' files hold a bare state dict (or one under `model_state_dict`), possibly with a
`module.` prefix from DataParallel. Their variant is recognised from the entry names and shapes;
the 2/3/4-bit files have identical layouts, so their bit width comes from the file name when it
says (`4bit.pth`), else from the weight statistics (see `estimate_bits`). Files are read by the
one weights loader, `qsci.deploy.weights`; this module works on what they hold.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import torch.nn as nn

from qsci.errors import InputFileError, QSCIError
from qsci.models.config import ModelConfig

VARIANTS = ("qsci_8bit", "qsci_4bit", "qsci_3bit", "qsci_2bit", "efficientsci_s_fp", "efficientsci_b_fp")
VARIANT_CONFIGS = {
    "qsci_8bit": ModelConfig("s", bits=8), "qsci_4bit": ModelConfig("s", bits=4),
    "qsci_3bit": ModelConfig("s", bits=3), "qsci_2bit": ModelConfig("s", bits=2),
    "efficientsci_s_fp": ModelConfig("s", bits=32), "efficientsci_b_fp": ModelConfig("b", bits=32),
}
_LOW_BITS = (2, 3, 4)
# main-path (b-bit) layers whose weight statistics reveal b
_BIT_PROBE = re.compile(r"^resdnet_list\.\d+\..*\.alpha$")


def state_dict_of(obj: object, path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a file's content (bare or under `model_state_dict`), `module.` prefixes removed."""
    if isinstance(obj, dict) and isinstance(obj.get("model_state_dict"), dict):
        obj = obj["model_state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputFileError(path, "holds no state dict (expected tensors, or a dict under 'model_state_dict')")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def estimate_bits(sd: dict[str, torch.Tensor]) -> int:
    """Bit width (2, 3 or 4) of a side-branch Q-SCI state dict, from its weight steps.

    LSQ sets a = 2 mean|w| / sqrt(Qp), so (2 mean|w| / a)^2 estimates Qp (1, 3, 7 for 2/3/4 bits);
    training moves steps only moderately, so the nearest Qp on a log scale is taken. A heuristic:
    prefer the file name or an explicit `bits`.
    """
    ratios = []
    for name, alpha in sd.items():
        weight = sd.get(name[: -len("alpha")] + "weight")
        if _BIT_PROBE.match(name) and weight is not None and weight.shape[0] == alpha.numel():
            mean_abs = weight.float().abs().reshape(weight.shape[0], -1).mean(dim=1)
            ratio = (2 * mean_abs / alpha.float().abs().clamp_min(1e-12)) ** 2
            ratios.append(ratio.clamp_min(1e-6).log())
    if not ratios:
        raise QSCIError("cannot tell the bit width: no quantized ResDNet layers in the state dict")
    qp_est = float(torch.cat(ratios).median().exp())
    return min(_LOW_BITS, key=lambda b: abs(math.log(qp_est) - math.log(2 ** (b - 1) - 1)))


def _bits_from_name(path: str | Path | None) -> int | None:
    m = re.search(r"(?<!\d)([234])[-_ ]?bits?", Path(path).name.lower()) if path else None
    return int(m.group(1)) if m else None


def detect_variant(sd: dict[str, torch.Tensor], path: str | Path | None = None) -> str:
    """Which released checkpoint layout `sd` has: one of `VARIANTS`.

    `path` (optional) lets a file name like `3bit.pth` decide between the 2/3/4-bit layouts.
    """
    keys = set(sd)
    if any(k.startswith("fem_conv1_1.") for k in keys):
        bits = _bits_from_name(path) or estimate_bits(sd)
        return f"qsci_{bits}bit"
    if any(k.endswith(".act.alpha") or ".moveq." in k for k in keys):
        return "qsci_8bit"
    if "fem.0.weight" in keys:
        return "efficientsci_b_fp" if sd["fem.0.weight"].shape[0] == 64 else "efficientsci_s_fp"
    if any(k.startswith("resdnet_list.") for k in keys):
        groups = {int(m.group(1)) for k in keys if (m := re.match(r"resdnet_list\.0\.cformer_list\.(\d+)\.", k))}
        return "efficientsci_b_fp" if len(groups) == 4 else "efficientsci_s_fp"
    raise QSCIError("not an EfficientSCI / Q-SCI state dict (no fem / resdnet_list entries)")


def compare(model: nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Entries of `sd` missing from, unexpected in, or shaped unlike `model`'s state dict."""
    own = model.state_dict()
    return {
        "missing": sorted(k for k in own if k not in sd),
        "unexpected": sorted(k for k in sd if k not in own),
        "mismatched": sorted(
            f"{k}: file {list(sd[k].shape)} vs model {list(own[k].shape)}"
            for k in own if k in sd and sd[k].shape != own[k].shape
        ),
    }


def variant_with_bits(sd: dict, path: str | Path | None, bits: int | None) -> str:
    """The released layout of `sd`, with an explicit `bits` deciding between 2/3/4-bit ones."""
    variant = detect_variant(sd, path)
    if bits is not None and variant.startswith("qsci_"):
        if (bits == 8) != (variant == "qsci_8bit"):
            raise QSCIError(f"the file holds a {variant} layout, not a {bits}-bit one")
        variant = f"qsci_{bits}bit"
    return variant


def load_strictly(model: nn.Module, sd: dict[str, torch.Tensor], path: str | Path, name: str) -> nn.Module:
    """`sd` into `model`, every entry present with its shape; else a user error naming the file.

    Checked first so that a wrong file is an `InputFileError`, never torch's multi-line RuntimeError.
    """
    report = compare(model, sd)
    if report["missing"] or report["unexpected"] or report["mismatched"]:
        first = (report["mismatched"] + report["missing"] + report["unexpected"])[0]
        n = sum(len(v) for v in report.values())
        counts = ", ".join(f"{len(report[k])} {k}" for k in ("missing", "unexpected", "mismatched") if report[k])
        raise InputFileError(path, f"does not match the {name} model ({n} problems: {counts}; e.g. {first})")
    model.load_state_dict(sd, strict=True)
    return model


def save_model(path: str | Path, model: nn.Module, **extra) -> Path:
    """Write {"config", "model_state_dict", **extra}; `qsci.deploy.weights.load_model` rebuilds it."""
    if not hasattr(model, "config"):
        raise QSCIError("only models built from a ModelConfig can be saved with their config")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": model.config.to_dict(), "model_state_dict": model.state_dict(), **extra}, p)
    return p
