"""`python -m qsci plot`: regenerate the README's PSNR-vs-BOPs figure from the manifest."""

NAME = "plot"
HELP = "draw PSNR vs BOPs (ours from checkpoints/manifest.json beside the paper's) as a PNG"


def add_arguments(p):
    p.add_argument("--out", default="assets/psnr_vs_bops.png")


def run(args) -> int:
    from qsci.plots import psnr_vs_bops_figure
    from qsci.zoo import read_manifest

    manifest = read_manifest()
    gap = manifest.get("gap_tv", {}).get("quantized_sci", {}).get("mean", {}).get("psnr")
    print(psnr_vs_bops_figure(manifest, args.out, gap_tv_psnr=gap))
    return 0
