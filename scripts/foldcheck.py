"""Check that the authors' checkpoints (per-channel activation steps) agree on integer kernels.

The released files need network access, so stand-ins are built the way the files are: our
model classes with the authors' configuration (`qsci.models.checkpoints.VARIANT_CONFIGS`, S
preset, per-channel steps), random weights, quantizer steps calibrated on one batch, non-zero
zero points, saved as a bare state dict with DataParallel's `module.` prefix. The file is then
loaded with `load_official` (strictly, like a downloaded one) and compared: fake-quant vs int8
(`convert_to_int8`, steps folded into the weights) on scenes, per-scene PSNR against ground
truth and the PSNR between the two backends' outputs.

    python -m scripts.foldcheck --bits 4 8 3 2 [--threads 2] [--scenes drop8,runner8,traffic] [--max-meas N]
    python -m scripts.foldcheck --file 4bit.pth          # a real downloaded file

Output: one JSON line per file (see `agreement`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from qsci.bench import calibrate
from qsci.data import EVAL_SCENES
from qsci.deploy.int8 import convert_to_int8, int8_layers
from qsci.deploy.weights import load_official, read_state_dict
from qsci.metrics import psnr_frame
from qsci.models.checkpoints import VARIANT_CONFIGS
from qsci.models.registry import build_model
from qsci.physics import SCIOperator
from qsci.quant.lsq import ActQuantizer, QConv3d, QLinear
from qsci.scenes import load_scene
from qsci.zoo import get_method, load_weights_file

FILE_NAMES = {8: "8bit.pth", 4: "4bit.pth", 3: "3bit.pth", 2: "2bit.pth"}


@torch.no_grad()
def make_authors_file(path: str | Path, bits: int, seed: int = 0, preset_overrides: dict | None = None,
                      calib_size: tuple[int, int, int] = (8, 64, 64), zero_point_range: float = 2.4) -> Path:
    """Write an authors'-format Q-SCI file: `module.`-prefixed bare state dict, calibrated steps.

    `preset_overrides` (e.g. {"in_ch": 4, "units": 1}) shrinks the network for quick tests; the
    file then no longer matches the released layout and must be loaded with `load_authors_like`.
    """
    cfg = VARIANT_CONFIGS[f"qsci_{bits}bit"]
    if preset_overrides:
        cfg = replace(cfg, **preset_overrides)
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    calibrate(model, calib_size, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():  # learned zero points are rarely 0 (LSQ+ learns them)
        if isinstance(m, ActQuantizer):
            m.zero_point.copy_((torch.rand(m.zero_point.shape, generator=g) * 2 - 1) * zero_point_range)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, p)
    return p


def load_authors_like(path: str | Path, bits: int, preset_overrides: dict | None = None) -> torch.nn.Module:
    """Load a file from `make_authors_file` (the released layout goes through `load_official`)."""
    if not preset_overrides:
        return load_official(path, bits=bits)[0]
    model = build_model(replace(VARIANT_CONFIGS[f"qsci_{bits}bit"], **preset_overrides))
    model.load_state_dict(read_state_dict(path), strict=True)
    return model.eval()


@torch.no_grad()
def per_channel_variant(model: torch.nn.Module, seed: int = 0, spread: float = 0.25,
                        zero_point_range: int = 1) -> torch.nn.Module:
    """A trained per-tensor model re-expressed with per-channel activation steps (authors' form).

    Same weights; each input channel c of every quantized layer gets the step a * f_c,
    f_c log-uniform in [1/(1+spread), 1+spread], and the zero point zr + k_c with k_c a random
    integer in [-zero_point_range, zero_point_range]. A well-conditioned stand-in for a trained
    authors' file (random networks are chaotic: see docs/int8.md).
    """
    cfg = replace(model.config, per_channel_act=True)
    out = build_model(cfg).eval()
    sd = model.state_dict()
    own = out.state_dict()
    g = torch.Generator().manual_seed(seed)
    for k, v in own.items():
        src = sd[k]
        if src.shape != v.shape:  # per-tensor step / zero point -> one per channel
            src = src.reshape(-1)[:1].expand(v.shape).clone()
        v.copy_(src)
    for m in out.modules():
        if isinstance(m, (QConv3d, QLinear)):
            n = m.act.alpha.numel()
            f = torch.exp((torch.rand(n, generator=g) * 2 - 1) * math.log1p(spread))
            m.act.alpha.mul_(f)
            m.act.zero_point.add_(torch.randint(-zero_point_range, zero_point_range + 1, (n,), generator=g).float())
    return out


def psnr_between(ref: torch.Tensor | np.ndarray, out: torch.Tensor | np.ndarray) -> float:
    """PSNR of `out` against `ref`, peak = max |ref| (inf when equal)."""
    ref, out = torch.as_tensor(ref).double(), torch.as_tensor(out).double()
    mse = float(((ref - out) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(float(ref.abs().max()) ** 2 / mse)


def agreement(model: torch.nn.Module, scenes=EVAL_SCENES, terms: int = 3,
              max_meas: int | None = None, log=None) -> dict:
    """Fake-quant vs int8 on scenes: per-scene PSNR (vs ground truth) of each, and between them.

    Returns {"scenes": {name: {"fakequant", "int8", "between"}}, "fakequant_psnr", "int8_psnr",
    "diff_db", "between_min_db", "routes", "seconds": {"fakequant", "int8"}}. `max_meas` keeps the
    first measurements of each scene only; `log(name, scores)` is called after each scene.
    """
    model = model.eval()
    m8 = convert_to_int8(model, terms=terms)
    routes: dict[str, int] = {}
    for layer in int8_layers(m8):
        routes[layer.route] = routes.get(layer.route, 0) + 1
    per_scene, secs = {}, {"fakequant": 0.0, "int8": 0.0}
    with torch.inference_mode():
        for scene in scenes:
            sc = load_scene(scene) if isinstance(scene, str) else scene
            op = SCIOperator(sc.mask)
            scores: dict[str, list[float]] = {"fakequant": [], "int8": []}
            between = []
            for y, gt in list(zip(sc.meas, sc.gt))[:max_meas]:
                x0 = op.network_input(y)
                recs = {}
                for key, net in (("fakequant", model), ("int8", m8)):
                    t0 = time.perf_counter()
                    recs[key] = net(x0)[0].float().numpy()
                    secs[key] += time.perf_counter() - t0
                    scores[key] += [psnr_frame(g, r) for g, r in zip(gt, recs[key])]
                between.append(psnr_between(recs["fakequant"], recs["int8"]))
            per_scene[sc.name] = {k: float(np.mean(v)) for k, v in scores.items()}
            per_scene[sc.name]["between"] = float(min(between))
            per_scene[sc.name]["measurements"] = len(between)
            if log is not None:
                log(sc.name, per_scene[sc.name])
    fq = float(np.mean([s["fakequant"] for s in per_scene.values()]))
    i8 = float(np.mean([s["int8"] for s in per_scene.values()]))
    return {"scenes": per_scene, "fakequant_psnr": fq, "int8_psnr": i8, "diff_db": i8 - fq,
            "between_min_db": min(s["between"] for s in per_scene.values()), "routes": routes,
            "seconds": {k: round(v, 1) for k, v in secs.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.foldcheck", description=__doc__.split("\n")[0])
    ap.add_argument("--bits", type=int, nargs="*", default=[4, 8, 3, 2], choices=[8, 4, 3, 2])
    ap.add_argument("--file", default=None, help="a real authors' file instead of synthetic ones")
    ap.add_argument("--from-trained", default=None, metavar="NAME",
                    help="our trained per-tensor model NAME (e.g. qsci-t-4bit) with per-channel steps")
    ap.add_argument("--scenes", default=",".join(EVAL_SCENES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--terms", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-meas", type=int, default=None, help="first N measurements of each scene only")
    ap.add_argument("--workdir", default="/tmp/qsci-foldcheck")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    scenes = args.scenes.split(",")
    if args.from_trained:
        base = load_weights_file(get_method(args.from_trained).checkpoint)
        jobs = [(f"{args.from_trained} per-channel (seed {args.seed})", args.from_trained,
                 lambda: per_channel_variant(base, seed=args.seed))]
    elif args.file:
        model, variant = load_official(args.file)
        jobs = [(variant, args.file, lambda m=model: m)]
    else:
        jobs = []
        for b in args.bits:
            path = make_authors_file(Path(args.workdir) / FILE_NAMES[b], b, seed=args.seed + b)
            jobs.append((f"qsci_{b}bit (synthetic)", str(path), lambda p=path, b=b: load_authors_like(p, b)))
    for name, path, load in jobs:
        t0 = time.perf_counter()
        report = agreement(load(), scenes, terms=args.terms, max_meas=args.max_meas,
                           log=lambda n, r: print(json.dumps({"scene": n, **r}), flush=True))
        report.update(file=path, variant=name, threads=args.threads, terms=args.terms, max_meas=args.max_meas,
                      wall_s=round(time.perf_counter() - t0, 1))
        print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
