"""Which reconstruction methods exist, whether their weights are here, and how to load them.

Three sources: our own checkpoints (listed in `checkpoints/manifest.json`), the authors'
released checkpoints (downloaded on demand through `qsci.data`), and the classical GAP-TV
solver. `load_runner` turns a name into something the engine can run.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from qsci.errors import QSCIError
from qsci.models.config import ModelConfig

REPO_CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"

# Authors' released checkpoints: our name -> (qsci.data registry name, preset, bits).
OFFICIAL = {
    "official-s-fp32": ("ckpt-official-s-fp32", "s", 32),
    "official-s-8bit": ("ckpt-official-s-8bit", "s", 8),
    "official-s-4bit": ("ckpt-official-s-4bit", "s", 4),
    "official-s-3bit": ("ckpt-official-s-3bit", "s", 3),
    "official-s-2bit": ("ckpt-official-s-2bit", "s", 2),
    "official-b-fp32": ("ckpt-official-b-fp32", "b", 32),
}


@dataclass(frozen=True)
class MethodInfo:
    name: str
    bits: int
    preset: str | None
    source: str  # "ours" | "official" | "classical"
    available: bool
    checkpoint: Path | None = None
    description: str = ""
    metrics: dict = field(default_factory=dict, hash=False, compare=False)

    def to_json(self) -> dict:
        return {
            "name": self.name, "bits": self.bits, "preset": self.preset, "source": self.source,
            "available": self.available, "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "description": self.description,
        }


def checkpoints_dir() -> Path:
    return Path(os.environ.get("QSCI_CHECKPOINTS", REPO_CHECKPOINTS))


def read_manifest() -> dict:
    """`checkpoints/manifest.json` as a dict (empty when there is none)."""
    path = checkpoints_dir() / "manifest.json"
    if not path.is_file():
        return {"models": []}
    return json.loads(path.read_text())


def _ours() -> list[MethodInfo]:
    out = []
    for entry in read_manifest().get("models", []):
        ckpt = checkpoints_dir() / entry["file"]
        out.append(MethodInfo(
            name=entry["name"], bits=int(entry["bits"]), preset=entry.get("preset"), source="ours",
            available=ckpt.is_file(), checkpoint=ckpt,
            description=f"our {entry.get('preset', '?').upper()}-preset model at "
            + ("full precision" if int(entry["bits"]) >= 32 else f"{entry['bits']} bits"),
            metrics=entry.get("metrics", {}),
        ))
    return out


def _official() -> list[MethodInfo]:
    from qsci import data

    out = []
    for name, (data_name, preset, bits) in OFFICIAL.items():
        available = data.is_available(data_name)
        out.append(MethodInfo(
            name=name, bits=bits, preset=preset, source="official", available=available,
            description="the authors' released checkpoint" + ("" if available else f" (fetch with `python -m qsci fetch {name}`)"),
        ))
    return out


GAP_TV = MethodInfo("gap-tv", 32, None, "classical", True, description="GAP-TV, classical iterative solver (no training)")


def list_methods() -> list[MethodInfo]:
    """GAP-TV, our checkpoints, and the authors' checkpoints, in that order."""
    return [GAP_TV, *_ours(), *_official()]


def benchmark_psnr(info: MethodInfo) -> float | None:
    """Measured mean PSNR (Q-SCI mask, `python -m qsci evaluate`) of a method, if recorded."""
    if info.name == GAP_TV.name:
        block = read_manifest().get("gap_tv", {}).get("quantized_sci")
    else:
        block = info.metrics.get("quantized_sci")
    return float(block["mean"]["psnr"]) if block else None


def _best_scored() -> dict[int, tuple[float, str]]:
    """bits -> (benchmark PSNR, name) of the best available, measured model of ours."""
    best: dict[int, tuple[float, str]] = {}
    for m in _ours():
        score = benchmark_psnr(m)
        if m.available and score is not None and score > best.get(m.bits, (-1e9, ""))[0]:
            best[m.bits] = (score, m.name)
    return best


def best_per_bits() -> dict[int, str]:
    """For each bit width, the available model of ours with the best measured benchmark score
    (so the warm-start family replaces the old end-to-end models wherever it scores higher)."""
    best = _best_scored()
    return {b: best[b][1] for b in sorted(best, reverse=True)}


def default_method() -> str:
    """What a front end runs when not told: our best model if it beats GAP-TV, else GAP-TV."""
    base = benchmark_psnr(GAP_TV)
    score, name = max(_best_scored().values(), default=(None, GAP_TV.name))
    return name if score is not None and (base is None or score > base) else GAP_TV.name


def default_comparison() -> list[str]:
    """The app's first selection: GAP-TV, our best full-precision and our best 4-bit model."""
    best = best_per_bits()
    return [GAP_TV.name] + [best[b] for b in (32, 4) if b in best]


def architecture_names() -> list[str]:
    from qsci.models import list_models

    return list(list_models())


def get_method(name: str) -> MethodInfo:
    """Look a name up among the methods; a bare architecture name (no weights) is allowed too."""
    for m in list_methods():
        if m.name == name:
            return m
    if name in architecture_names():
        parts = ModelConfig.parse_name(name)
        return MethodInfo(name, parts["bits"], parts["preset"], "ours", False,
                          description="architecture without trained weights")
    known = ", ".join(m.name for m in list_methods())
    raise QSCIError(f"unknown method {name!r}; known: {known} (see `python -m qsci models`)")


_lock = threading.Lock()


def load_runner(name: str, backend: str = "auto", checkpoint: str | Path | None = None):
    """A cached runner for a method (loading and integer conversion happen once per process)."""
    with _lock:
        return _load_runner_cached(name, backend, None if checkpoint is None else str(checkpoint))


@lru_cache(maxsize=16)
def _load_runner_cached(name: str, backend: str, checkpoint: str | None):
    from qsci.runners import GapTVRunner, NetworkRunner

    if name == "gap-tv":
        return GapTVRunner()
    info = get_method(name)
    model, weights = _load_model(info, checkpoint)
    return NetworkRunner(name, model, backend=backend, weights=weights)


def _load_model(info: MethodInfo, checkpoint: str | None):
    """(model, "trained"|"random") for a network method."""
    from qsci.deploy import weights
    from qsci.models import create_model

    if checkpoint is not None:
        return load_weights_file(checkpoint), "trained"
    if info.source == "official":
        from qsci import data

        path = data.locate(OFFICIAL[info.name][0])
        model, _variant = weights.load_official(path)
        return model, "trained"
    if info.checkpoint is not None and info.available:
        return load_weights_file(info.checkpoint), "trained"
    if info.source == "ours" and info.checkpoint is not None:
        raise QSCIError(f"checkpoint file for {info.name} is missing: {info.checkpoint}")
    return create_model(info.name), "random"


def load_weights_file(path: str | Path):
    """A model from any weights file we know (packed, ours, training states, the authors'), read once."""
    from qsci.deploy.weights import load_model

    return load_model(path)
