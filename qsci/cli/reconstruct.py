"""`python -m qsci reconstruct`: a measurement file in, reconstructed frames out.

The measurement's value scale follows `qsci.io.inspect` (the same policy as the app and its API):
a sum of 8-bit frames (the benchmark `.mat` files) is divided by 255 with a notice on stderr;
ambiguous or out-of-range scales are refused with the option to use. Suspicious inputs print
`warning:` lines on stderr and the reconstruction still runs.
"""

NAME = "reconstruct"
HELP = "reconstruct the frames of a measurement file with a mask and a method"

VIDEO_EXTS = (".mp4", ".gif")


def add_arguments(p):
    from qsci.io.inspect import SCALES
    from qsci.io.writers import SAVE_EXTS

    p.add_argument("--meas", required=True, help="measurement file (.mat, .npy, .npz, .png, .tif)")
    p.add_argument("--gt", default=None, help="optional ground-truth frames or video: adds PSNR/SSIM to the report "
                   "(when it covers fewer measurements than the file holds, only the covered ones are used)")
    p.add_argument("--mask", default="quantized_sci", help="mask file or registry name (quantized_sci, real_mask)")
    p.add_argument("--model", default=None,
                   help="a name from `qsci models` (default: our best model if it beats GAP-TV, else gap-tv)")
    p.add_argument("--out", required=True,
                   help=f"output file: {' '.join(SAVE_EXTS)} (frames; .png writes a folder of frames) "
                        f"or {' '.join(VIDEO_EXTS)} (video)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--cr", type=int, default=None, help="compression ratio: planes taken from a registry mask (real_mask)")
    p.add_argument("--index", type=int, default=None, help="reconstruct only this measurement of the file (0-based)")
    p.add_argument("--meas-scale", default="auto", choices=SCALES,
                   help="value scale of the measurement: auto (detect; a sum of 8-bit frames is divided by 255), "
                        "none (as stored), 255 (divide by 255), real (meas/255*CR/2)")
    p.add_argument("--real-scaling", action="store_true", help="apply the real-data scaling meas/255*CR/2 "
                   "(same as --meas-scale real)")


def check_out(out: str) -> str:
    """The output extension, checked before anything is computed."""
    from pathlib import Path

    from qsci.errors import QSCIError
    from qsci.io.writers import SAVE_EXTS

    ext = Path(out).suffix.lower()
    if ext not in SAVE_EXTS + VIDEO_EXTS:
        raise QSCIError(f"--out {out}: cannot write '{Path(out).suffix or '(no extension)'}' files; "
                        f"use one of {', '.join(SAVE_EXTS + VIDEO_EXTS)}")
    return ext


def _read_inputs(args):
    """(SceneInput, notices, warnings), validated; raises QSCIError with one line."""
    from pathlib import Path

    from qsci import data, io
    from qsci.io.inspect import input_warnings, scale_measurement
    from qsci.scenes import SceneInput, ground_truth_for, scene_from_files

    scale = "real" if args.real_scaling else args.meas_scale
    if Path(args.mask).suffix:
        scene = scene_from_files(args.meas, args.mask, args.gt, scale=scale, measurement=args.index)
        return scene
    mask = data.load_mask(args.mask, cr=args.cr)
    m = io.read_measurement(args.meas)
    io.check_pair(m.data, mask, meas_path=args.meas, mask_path=args.mask)
    meas, first = m.data, 0
    if args.index is not None:
        if not 0 <= args.index < meas.shape[0]:
            from qsci.errors import QSCIError

            raise QSCIError(f"{Path(args.meas).name}: measurement index {args.index} is out of range: the file "
                            f"holds {meas.shape[0]} measurement(s)")
        meas, first = meas[args.index:args.index + 1], args.index
    meas, notices = scale_measurement(meas, mask, scale, where=args.meas)
    gt = None
    if args.gt:
        gt = ground_truth_for(args.gt, meas.shape[0], mask, first=first, partial=True)
        if gt.shape[0] < meas.shape[0]:
            notices.append(f"the ground truth covers {gt.shape[0]} of the {meas.shape[0]} measurements; "
                           "only those are reconstructed and scored")
            meas = meas[: gt.shape[0]]
    info = {"notices": notices, "warnings": input_warnings(meas, mask)}
    return SceneInput(Path(args.meas).name, "upload", meas, mask, gt, info)


def run(args) -> int:
    import sys
    import warnings
    from pathlib import Path

    from qsci import io
    from qsci.cli._common import stderr_progress
    from qsci.errors import QSCIError

    ext = check_out(args.out)  # before reading or computing anything
    if args.model is None and args.checkpoint:
        raise QSCIError("--checkpoint needs --model (the architecture the weights are for)")
    with warnings.catch_warnings():  # readers' complaints about damaged files end as one error line
        warnings.simplefilter("ignore")
        scene = _read_inputs(args)
    for note in scene.info.get("notices", []):
        print(f"note: {note}", file=sys.stderr)
    for warning in scene.info.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    from qsci.engine import reconstruct  # torch: only once the inputs are known to be good

    if args.model is None:
        from qsci.zoo import default_method

        args.model = default_method()
        print(f"note: model {args.model} (our best measured method; choose with --model)", file=sys.stderr)

    res = reconstruct(scene.meas, scene.mask, args.model, gt=scene.gt, backend=args.backend,
                      progress=stderr_progress, checkpoint=args.checkpoint)
    out = Path(args.out)
    if ext in VIDEO_EXTS:
        written = io.write_video(out, res.frames.reshape(-1, *res.frames.shape[2:]))
    elif ext in (".npz", ".mat"):
        written = io.save_frames(out, res.frames, method=args.model, backend=res.backend)
    else:  # .npy / .tif / .png hold frames only
        written = io.save_frames(out, res.frames)
    scores = "" if res.psnr is None else f", PSNR {res.psnr_mean:.2f} dB, SSIM {res.ssim_mean:.4f}"
    print(f"{written}: {res.frames.shape[0]} measurement(s) x {res.frames.shape[1]} frames, {res.seconds:.2f} s on {res.backend}{scores}")
    return 0
