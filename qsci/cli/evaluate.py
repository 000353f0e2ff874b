"""`python -m qsci evaluate`: the benchmark protocol for one method."""

NAME = "evaluate"
HELP = "PSNR/SSIM of a method on benchmark scenes (re-simulated with the evaluation mask)"


def add_arguments(p):
    from qsci.data import EVAL_SCENES

    p.add_argument("--model", required=True, help="a name from `qsci models` (or an architecture name with --checkpoint)")
    p.add_argument("--scenes", default=",".join(EVAL_SCENES), help="comma-separated benchmark scenes, or 'validation' for the embedded clips used to choose training stages")
    p.add_argument("--mask", default="quantized_sci", help="quantized_sci, random[:SEED], or a mask file")
    p.add_argument("--backend", default="auto", help="auto, fp32, bf16, int8 or fakequant")
    p.add_argument("--checkpoint", default=None, help="use the weights in this file")
    from qsci.cli._common import add_json_argument

    add_json_argument(p)  # the result is JSON either way; --json FILE also writes it to FILE


def run(args) -> int:
    from qsci.cli._common import emit_json, stderr_progress
    from qsci.evaluate import VALIDATION_SCENES, evaluate

    scenes = [s.strip() for s in args.scenes.split(",") if s.strip()]
    if scenes == ["validation"]:
        scenes = list(VALIDATION_SCENES)
    result = evaluate(args.model, scenes, mask=args.mask, backend=args.backend, checkpoint=args.checkpoint, progress=stderr_progress)
    stderr_progress(1.0, "done")
    emit_json(result, args.json)
    return 0
