"""`python -m qsci reconstruct`: a measurement file in, reconstructed frames out."""

NAME = "reconstruct"
HELP = "reconstruct the frames of a measurement file with a mask and a method"


def add_arguments(p):
    p.add_argument("--meas", required=True, help="measurement file (.mat, .npy, .npz, .png, .tif)")
    p.add_argument("--gt", default=None, help="optional ground-truth frames or video: adds PSNR/SSIM to the report")
    p.add_argument("--mask", default="quantized_sci", help="mask file or registry name (quantized_sci, real_mask)")
    p.add_argument("--model", default="gap-tv", help="a name from `qsci models`")
    p.add_argument("--out", required=True, help="output file: .npz, .mat, .png (frames) or .mp4/.gif (video)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--cr", type=int, default=None, help="compression ratio: planes taken from a registry mask (real_mask)")
    p.add_argument("--real-scaling", action="store_true", help="apply the real-data scaling meas/255*CR/2")


def _read_inputs(args):
    """(measurement, mask, ground truth or None), validated; raises QSCIError with one line."""
    from pathlib import Path

    from qsci import data, io

    if Path(args.mask).suffix:
        mask = io.read_mask(args.mask)
    else:
        name = "quantized_sci_mask" if args.mask == "quantized_sci" else args.mask
        mask = data.load_mask(name, cr=args.cr)
    m = io.read_measurement(args.meas, cr=mask.shape[0], real_scaling=args.real_scaling)
    io.check_pair(m.data, mask, meas_path=args.meas, mask_path=args.mask)
    gt = None
    if args.gt:
        from qsci.scenes import ground_truth_for

        gt = ground_truth_for(args.gt, m.data.shape[0], mask)
    return m, mask, gt


def run(args) -> int:
    import warnings
    from pathlib import Path

    from qsci import io
    from qsci.cli._common import stderr_progress

    with warnings.catch_warnings():  # readers' complaints about damaged files end as one error line
        warnings.simplefilter("ignore")
        m, mask, gt = _read_inputs(args)
    from qsci.engine import reconstruct  # torch: only once the inputs are known to be good

    res = reconstruct(m.data, mask, args.model, gt=gt, backend=args.backend, progress=stderr_progress,
                      checkpoint=args.checkpoint)
    out = Path(args.out)
    if out.suffix.lower() in (".mp4", ".gif"):
        written = io.write_video(out, res.frames.reshape(-1, *res.frames.shape[2:]))
    else:
        written = io.save_frames(out, res.frames, method=args.model, backend=res.backend)
    scores = "" if res.psnr is None else f", PSNR {res.psnr_mean:.2f} dB, SSIM {res.ssim_mean:.4f}"
    print(f"{written}: {res.frames.shape[0]} measurement(s) x {res.frames.shape[1]} frames, {res.seconds:.2f} s on {res.backend}{scores}")
    return 0
