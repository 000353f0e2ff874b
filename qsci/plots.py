"""The README's PSNR-vs-computation figure, drawn from `checkpoints/manifest.json`.

Our points are measured (`python -m qsci evaluate`); the paper's points are drawn in another
style and labelled "paper". The x axis is BOPs (MACs x weight bits x activation bits) from our
complexity counter. The paper's low-bit "ops" do not follow that formula (README, "Complexity"),
so each published PSNR is drawn at the BOPs our counter gives the S-preset model it describes.
"""

from __future__ import annotations

from pathlib import Path

from qsci.models.config import ModelConfig
from qsci.published import QSCI_PAPER

# BOPs per 256x256x8 measurement of the S-preset model at each bit width (32 = full precision), as
# `qsci.deploy.complexity.count` gives them for `create_model(name, per_channel_act=False)`. Stored,
# so that the first chart does not build and count five networks; tests/test_complexity.py recounts.
S_PRESET_BOPS = {32: 576_934_366_937_088, 8: 36_058_397_933_568, 4: 9_566_502_780_928,
                 3: 5_622_615_506_944, 2: 2_805_553_168_384}


def paper_points() -> list[tuple[str, float, float]]:
    """(label, BOPs of the matching S-preset model, published PSNR) of the paper's models."""
    return [(p.name, float(S_PRESET_BOPS[p.bits]), p.psnr) for p in QSCI_PAPER]


def our_points(manifest: dict, mask_key: str = "quantized_sci") -> list[tuple[str, float, float]]:
    """(name, BOPs, mean PSNR) of every manifest model with a measured score."""
    out = []
    for m in manifest.get("models", []):
        score = m.get("metrics", {}).get(mask_key, {}).get("mean", {}).get("psnr")
        if score is not None and m.get("bops"):
            out.append((m["name"], float(m["bops"]), float(score)))
    return out


def psnr_vs_bops_figure(manifest: dict, out: str | Path, gap_tv_psnr: float | None = None) -> Path:
    """Write the PNG figure and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    families = {"gap": ("o-", "tab:blue", "ours, GAP-TV warm start (T, measured)"),
                "": ("^-", "tab:cyan", "ours, end-to-end (T, measured)")}
    for family, (style, color, label) in families.items():
        pts = [pt for pt in our_points(manifest) if ModelConfig.parse_name(pt[0])["family"] == family]
        if not pts:
            continue
        ax.plot([b for _, b, _ in pts], [p for _, _, p in pts], style, color=color, label=label)
        for name, b, p in pts:  # bits only: the legend says which family
            ax.annotate(name.rsplit("-", 1)[1], (b, p), textcoords="offset points", xytext=(4, 4), fontsize=7,
                        color=color)
    paper = paper_points()
    ax.plot([b for _, b, _ in paper], [p for _, _, p in paper], "s--", color="tab:gray", label="Q-SCI paper (published, six scenes)")
    for name, b, p in paper:
        ax.annotate(name.replace(" (paper)", ""), (b, p), textcoords="offset points", xytext=(4, -10), fontsize=7, color="tab:gray")
    if gap_tv_psnr is not None:
        ax.axhline(gap_tv_psnr, color="tab:red", lw=1, ls=":", label=f"GAP-TV (measured) {gap_tv_psnr:.2f} dB")
    ax.set_xscale("log")
    ax.margins(x=0.12)
    ax.set_xlabel("computation per 256x256x8 measurement (BOPs, log scale)")
    ax.set_ylabel("mean PSNR (dB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
