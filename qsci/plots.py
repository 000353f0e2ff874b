"""The README's PSNR-vs-computation figure, drawn from `checkpoints/manifest.json`.

Our points are measured (`python -m qsci evaluate`); the paper's points are drawn in another
style and labelled "paper". Both use BOPs (MACs x weight bits x activation bits); the paper's
own unit is converted with `PAPER_OPS_TO_BOPS` (see README, "Complexity").
"""

from __future__ import annotations

from pathlib import Path

from qsci.published import QSCI_PAPER

# The paper's "ops" count equals our MAC count for the same model and size (README,
# "Complexity"); one MAC at w x a bits is w*a BOPs.
PAPER_OPS_TO_BOPS = {32: 32 * 32, 8: 8 * 8, 4: 4 * 4, 3: 3 * 3, 2: 2 * 2}


def paper_points() -> list[tuple[str, float, float]]:
    """(label, BOPs, PSNR) of the paper's models (six-scene mean)."""
    return [(p.name, p.ops_g * 1e9 * PAPER_OPS_TO_BOPS[p.bits], p.psnr) for p in QSCI_PAPER]


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
    ours = our_points(manifest)
    if ours:
        ax.plot([b for _, b, _ in ours], [p for _, _, p in ours], "o-", color="tab:blue", label="ours (measured, Drop/Runner/Traffic)")
        for name, b, p in ours:
            ax.annotate(name, (b, p), textcoords="offset points", xytext=(4, 4), fontsize=7)
    paper = paper_points()
    ax.plot([b for _, b, _ in paper], [p for _, _, p in paper], "s--", color="tab:gray", label="Q-SCI paper (published, six scenes)")
    for name, b, p in paper:
        ax.annotate(name.replace(" (paper)", ""), (b, p), textcoords="offset points", xytext=(4, -10), fontsize=7, color="tab:gray")
    if gap_tv_psnr is not None:
        ax.axhline(gap_tv_psnr, color="tab:red", lw=1, ls=":", label=f"GAP-TV (measured) {gap_tv_psnr:.2f} dB")
    ax.set_xscale("log")
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
