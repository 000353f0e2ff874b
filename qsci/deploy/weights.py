"""One loader for every weights file: ours, packed, the authors' and training states.

Each file is read once, with `torch.load(weights_only=True)` (nothing in a file can run code),
and recognised by what it holds, never by its name. Every problem, from a missing file to a
state dict that does not fit its network, is an `InputFileError` naming the file, so the front
ends show one line. The pure state-dict logic (variant detection, strict comparison) stays with
the networks in `qsci.models.checkpoints`; this module owns the files.
"""

from __future__ import annotations

import pickle
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from qsci.deploy import packing
from qsci.errors import InputFileError, QSCIError
from qsci.models import checkpoints as ckpts
from qsci.models.config import ModelConfig
from qsci.models.registry import build_model

TRAINING_FORMAT = "qsci-train-v1"  # training/checkpointing.py writes it
KINDS = ("packed", "training", "ours", "official")
# what unpacking a packed dict with missing or malformed parts raises
_DAMAGED = (KeyError, TypeError, ValueError, IndexError, RuntimeError)


@contextmanager
def _packed_errors(path: Path):
    """Unpacking errors name the file: the packing code does not know it, and a damaged file
    raises plain Python errors."""
    try:
        yield
    except QSCIError as exc:
        raise InputFileError(path, str(exc)) from None
    except _DAMAGED as exc:
        raise InputFileError(path, f"damaged packed checkpoint ({type(exc).__name__})") from None


def read_weights(path: str | Path, map_location="cpu") -> object:
    """The object stored in a weights file: the project's only `torch.load`."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "checkpoint file not found")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # torch refused a Python object (possibly code)
            raise InputFileError(p, "refused: the checkpoint holds pickled Python objects, which are never "
                                    "loaded (weights-only)") from None
        raise InputFileError(p, f"not a readable weights-only PyTorch checkpoint ({type(exc).__name__})") from None
    except Exception as exc:  # zip / storage / EOF errors come in many types
        raise InputFileError(p, f"not a readable weights-only PyTorch checkpoint ({type(exc).__name__})") from None


@dataclass(frozen=True)
class WeightsFile:
    """One weights file as read: its path, its kind (one of KINDS) and what it holds."""

    path: Path
    kind: str
    content: object

    @property
    def config(self) -> dict | None:
        """The network config stored with the weights (not in the authors' files)."""
        if self.kind == "official":
            return None
        return dict(self.content.get("config") or {}) or None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Float weights by entry name (packed codes unpacked; `module.` prefixes removed)."""
        if self.kind == "packed":
            with _packed_errors(self.path):
                return packing.unpack_state_dict(self.content)
        return ckpts.state_dict_of(self.content, self.path)


def open_weights(path: str | Path, map_location="cpu") -> WeightsFile:
    """Read a weights file once and say which kind it is."""
    obj = read_weights(path, map_location)
    fmt = obj.get("format") if isinstance(obj, dict) else None
    if fmt == packing.FORMAT:
        kind = "packed"
    elif fmt == TRAINING_FORMAT:
        kind = "training"
    elif isinstance(obj, dict) and isinstance(obj.get("config"), dict):
        kind = "ours"
    else:
        kind = "official"
    return WeightsFile(Path(path), kind, obj)


def _opened(source: str | Path | WeightsFile) -> WeightsFile:
    return source if isinstance(source, WeightsFile) else open_weights(source)


def read_packed(path: str | Path) -> dict:
    """The packed dict of one of our compact files (checkpoints/*.pt); other files are refused."""
    wf = open_weights(path)
    if wf.kind != "packed":
        raise InputFileError(path, f"not a packed Q-SCI checkpoint (format {packing.FORMAT!r} expected)")
    return wf.content


def read_state_dict(source: str | Path | WeightsFile) -> dict[str, torch.Tensor]:
    """The state dict in any weights file (bare or under `model_state_dict`, packed unpacked)."""
    return _opened(source).state_dict()


def load_official(source: str | Path | WeightsFile, bits: int | None = None) -> tuple[nn.Module, str]:
    """(model in eval mode, variant) from one of the authors' files, loaded strictly.

    S preset with per-channel activation steps (B preset for `efficientsci_b_fp`); `bits`
    overrides the 2/3/4-bit guess.
    """
    wf = _opened(source)
    sd = wf.state_dict()
    variant = _variant(sd, wf.path, bits)
    model = ckpts.load_strictly(build_model(ckpts.VARIANT_CONFIGS[variant]), sd, wf.path, variant)
    return model.eval(), variant


def _variant(sd: dict[str, torch.Tensor], path: Path, bits: int | None) -> str:
    try:
        return ckpts.variant_with_bits(sd, path, bits)
    except InputFileError:
        raise
    except QSCIError as exc:  # the layout error does not know the file
        raise InputFileError(path, str(exc)) from None


def load_model(source: str | Path | WeightsFile) -> nn.Module:
    """The network in any weights file, in eval mode: rebuilt from the stored config (ours, packed,
    training states) or from the detected layout (the authors' files)."""
    wf = _opened(source)
    if wf.kind == "packed" and wf.config is None:
        raise InputFileError(wf.path, "packed checkpoint has no model config; use unpack_into")
    if wf.config is None:  # the authors' files (and training states written without a config)
        return load_official(wf)[0]
    config = _config(wf)
    if wf.kind == "packed":
        with _packed_errors(wf.path):
            return packing.unpack_into(build_model(config), wf.content).eval()
    return ckpts.load_strictly(build_model(config), wf.state_dict(), wf.path, config.name).eval()


def _config(wf: WeightsFile) -> ModelConfig:
    try:
        return ModelConfig.from_dict(wf.config)
    except QSCIError as exc:
        raise InputFileError(wf.path, str(exc)) from None
    except TypeError as exc:
        raise InputFileError(wf.path, f"model config not understood ({exc})") from None


def load_check(source: str | Path | WeightsFile, bits: int | None = None) -> dict:
    """{"variant", "missing", "unexpected", "mismatched", "ok"} for the model a state-dict file needs.

    `variant` is a released layout name, or the registry name for files that store their config.
    """
    wf = _opened(source)
    sd = wf.state_dict()
    if wf.config is not None:
        config = _config(wf)
        variant = config.name
    else:
        variant = _variant(sd, wf.path, bits)
        config = ckpts.VARIANT_CONFIGS[variant]
    report = ckpts.compare(build_model(config), sd)
    ok = not (report["missing"] or report["unexpected"] or report["mismatched"])
    return {"variant": variant, **report, "ok": ok}
