"""What each method is worth, shown where it is chosen: benchmark score, bits, BOPs and source.

Every number comes from data at run time, never from this file: our models' scores and BOPs
from `checkpoints/manifest.json` (written by `python -m qsci evaluate` / export), GAP-TV's
score from the manifest's `gap_tv` block (the classical baseline), the authors' checkpoints'
scores from the paper's published table (`qsci.published`), their BOPs from our complexity
counter. A model whose benchmark score is below GAP-TV's, measured by the same protocol, gets
a plain warning.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

#: The benchmark protocol the app shows first: the Q-SCI mask, as the paper evaluates.
PREFERRED_MASK = "quantized_sci"
BASELINE = "gap-tv"
SOURCE_TEXT = {"ours": "ours, trained here", "official": "the authors'", "classical": "classical, no training"}


@dataclass(frozen=True)
class MethodCard:
    """One method as the picker shows it."""

    name: str
    source: str  # "ours" | "official" | "classical"
    bits: int | None  # None: not a network
    bops: float | None
    psnr: float | None  # the benchmark mean PSNR shown, dB
    score_kind: str  # "measured" (our protocol) | "published" (paper) | ""
    protocol: str  # what the score is a mean over
    available: bool  # weights on this machine (False: downloaded on first use)
    download_bytes: int | None = None
    below_baseline: bool = False
    baseline_psnr: float | None = None

    @property
    def bits_text(self) -> str:
        if self.bits is None:
            return "no network"
        return "fp32" if self.bits >= 32 else f"{self.bits}-bit"

    def label(self) -> str:
        """Checkbox label: name, score, bits, and the warning or the download note."""
        parts = [self.name]
        if self.psnr is not None:
            parts.append(f"{self.psnr:.2f} dB" + (" (published)" if self.score_kind == "published" else ""))
        else:
            parts.append("no benchmark score")
        parts.append(self.bits_text)
        text = " · ".join(parts)
        if self.below_baseline:
            text += " ⚠ below GAP-TV"
        if not self.available:
            text += " · downloads on first use"
        return text

    def to_json(self) -> dict:
        return {"name": self.name, "source": self.source, "bits": self.bits, "bops": self.bops,
                "psnr": self.psnr, "score_kind": self.score_kind, "protocol": self.protocol,
                "available": self.available, "below_baseline": self.below_baseline}


def _finite(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _mask_key(metrics: dict) -> str | None:
    if PREFERRED_MASK in metrics:
        return PREFERRED_MASK
    return next(iter(sorted(metrics)), None)


def _protocol(block: dict, mask: str | None) -> str:
    scenes = ", ".join(sorted((block or {}).get("scenes", {})))
    what = f"mean over {scenes}" if scenes else "mean"
    return f"{what} ({mask} mask, `qsci evaluate`)" if mask else what


def baseline_score(manifest: dict) -> tuple[float | None, str | None, str]:
    """(GAP-TV mean PSNR, mask key, protocol text) from the manifest's `gap_tv` block."""
    metrics = (manifest or {}).get("gap_tv") or {}
    mask = _mask_key(metrics)
    if mask is None:
        return None, None, ""
    block = metrics.get(mask) or {}
    return _finite((block.get("mean") or {}).get("psnr")), mask, _protocol(block, mask)


@functools.lru_cache(maxsize=16)
def architecture_bops(name: str) -> float | None:
    """BOPs per 256×256×8 measurement of an architecture, from our counter (cached)."""
    from qsci.deploy.complexity import count
    from qsci.models import ModelConfig, create_model
    from qsci.plots import S_PRESET_BOPS

    try:
        bits = ModelConfig.parse_name(name)["bits"] if name.startswith("qsci-s-") else None
        if bits in S_PRESET_BOPS:  # stored, and shared with the paper's points on the chart
            return float(S_PRESET_BOPS[bits])
        return float(count(create_model(name, per_channel_act=False), (8, 256, 256)).bops)
    except Exception:  # an architecture the counter cannot build: show no figure rather than a wrong one
        return None


def _published(preset: str | None, bits: int):
    from qsci.published import QSCI_PAPER

    if preset != "s":  # the paper's table is the S-preset models (EfficientSCI-S and Q-SCI)
        return None
    return next((p for p in QSCI_PAPER if p.bits == bits), None)


def method_cards(show_unavailable_official: bool = True, count_official_bops: bool = True) -> list[MethodCard]:
    """Cards of the methods the app can run, in `qsci.zoo.list_methods` order.

    Our checkpoints must be on disk; the authors' are listed when on disk or, with
    `show_unavailable_official`, as downloadable on first use.
    """
    from qsci import zoo

    manifest = zoo.read_manifest()
    entries = {e.get("name"): e for e in manifest.get("models", [])}
    base, base_mask, base_protocol = baseline_score(manifest)
    cards = []
    for m in zoo.list_methods():
        if m.source == "classical":
            cards.append(MethodCard(m.name, "classical", None, None, base if m.name == BASELINE else None,
                                    "measured" if m.name == BASELINE and base is not None else "",
                                    base_protocol if m.name == BASELINE else "", True))
            continue
        if m.source == "ours":
            if not m.available:
                continue
            entry = entries.get(m.name, {})
            mask = base_mask if base_mask in m.metrics else _mask_key(m.metrics)
            block = m.metrics.get(mask) or {} if mask else {}
            psnr = _finite((block.get("mean") or {}).get("psnr"))
            same = mask == base_mask and sorted(block.get("scenes", {})) == sorted(
                ((manifest.get("gap_tv") or {}).get(base_mask) or {}).get("scenes", {}))
            below = bool(same and psnr is not None and base is not None and psnr < base)
            cards.append(MethodCard(m.name, "ours", m.bits, _finite(entry.get("bops")), psnr,
                                    "measured" if psnr is not None else "", _protocol(block, mask), True,
                                    below_baseline=below, baseline_psnr=base if below else None))
            continue
        # the authors' checkpoints
        if not (m.available or show_unavailable_official):
            continue
        paper = _published(m.preset, m.bits)
        arch = f"qsci-{m.preset}-{'fp32' if m.bits >= 32 else f'{m.bits}bit'}"
        size = _download_size(m.name)
        cards.append(MethodCard(m.name, "official", m.bits, architecture_bops(arch) if count_official_bops else None,
                                paper.psnr if paper else None, "published" if paper else "",
                                "published six-scene mean (paper)" if paper else "", m.available,
                                download_bytes=size))
    return cards


def _download_size(name: str) -> int | None:
    from qsci import data, zoo

    try:
        return data.get(zoo.OFFICIAL[name][0]).size
    except Exception:
        return None


def offline() -> bool:
    """True when downloads are switched off (`QSCI_OFFLINE`), as `qsci.data` decides."""
    import os

    return os.environ.get("QSCI_OFFLINE", "").strip() not in ("", "0")


def format_bops(bops: float | None) -> str:
    """One style for every compute figure: mantissa × 10^exponent."""
    if bops is None or not math.isfinite(bops) or bops <= 0:
        return "—"
    exp = int(math.floor(math.log10(bops)))
    return f"{bops / 10 ** exp:.2f}×10{str(exp).translate(_SUPERSCRIPT)}"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def cards_table(cards: list[MethodCard]) -> str:
    """Markdown table under the picker: every method's score, bits, BOPs and source."""
    if not cards:
        return ""
    base = next((c for c in cards if c.name == BASELINE and c.psnr is not None), None)
    lines = ["| method | benchmark PSNR | bits | BOPs / measurement | weights |", "|---|---|---|---|---|"]
    for c in cards:
        score = "—" if c.psnr is None else f"{c.psnr:.2f} dB" + (" (published)" if c.score_kind == "published" else "")
        if c.below_baseline:
            score += f" ⚠ below GAP-TV ({c.baseline_psnr:.2f} dB)"
        source = SOURCE_TEXT.get(c.source, c.source)
        if not c.available:
            size = f", {c.download_bytes / 2**20:.0f} MB" if c.download_bytes else ""
            source += f" — downloads on first use{size}"
        lines.append(f"| `{c.name}` | {score} | {c.bits_text} | {format_bops(c.bops)} | {source} |")
    notes = []
    if base is not None:
        notes.append(f"Benchmark PSNR: {base.protocol}; GAP-TV is the classical baseline.")
    if any(c.score_kind == "published" for c in cards):
        notes.append("“Published”: the paper's mean over six scenes, not measured here.")
    notes.append("BOPs = MACs × weight bits × activation bits for one 256×256×8 measurement.")
    return "\n".join(lines) + "\n\n" + " ".join(notes)
