"""What the app does, as plain functions: no Gradio here, so every step is unit-testable.

Inputs become a `qsci.scenes.SceneInput`; `reconstruct_all` runs the chosen methods through
`qsci.engine.reconstruct` (cached per input and method, one failure never hiding the other
results); the remaining functions turn a `Run` into tables, figures, files and pictures.
User mistakes surface as `qsci.errors.QSCIError` with the library's own message.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from qsci.errors import QSCIError
from ui import catalog, charts, filecard, panel, views, weights
from ui.cache import ResultCache, array_digest

Progress = Callable[[float, str], None] | None

CACHE = ResultCache(max_items=48, max_bytes=768 << 20)
#: Show network architectures that have no trained weights (random init): for tests and demos
#: before training has finished, never on by default.
SHOW_UNTRAINED_ENV = "QSCI_APP_SHOW_UNTRAINED"
VIDEO_FPS = 8
_WORK_ROOT = Path(tempfile.gettempdir()) / "qsci-app"
_WORK_TTL_S = 3600



class Cancelled(QSCIError):
    """Raised from a progress callback to stop a run between steps (the Stop button)."""


SUMMARY_HEADERS = ["method", "status", "PSNR (dB)", "SSIM", "seconds", "backend", "weights"]


@dataclass
class Run:
    """One click's results: the input, each method's result or error, and written files."""

    scene: object  # qsci.scenes.SceneInput
    results: dict = field(default_factory=dict)  # method -> qsci.engine.ReconResult
    errors: dict = field(default_factory=dict)  # method -> one-line message
    order: list = field(default_factory=list)  # methods in the order they were asked for
    videos: dict = field(default_factory=dict)  # label -> Path (browser-playable)
    files: list = field(default_factory=list)  # downloads

    @property
    def frame_count(self) -> int:
        return int(self.scene.meas.shape[0]) * int(self.scene.mask.shape[0])


# ---------------------------------------------------------------- choices for the widgets

def scene_choices() -> tuple[list[tuple[str, str]], str | None]:
    """(label, name) pairs for the scene dropdown and a default that loads without a download."""
    from qsci.scenes import list_scenes

    scenes = list_scenes()
    out = [(f"{s.name} ({s.kind})" + ("" if s.available else f" — {s.status}"), s.name) for s in scenes]
    ready = [s for s in scenes if s.available]
    default = next((s.name for s in ready if s.kind == "benchmark"), ready[0].name if ready else None)
    return out, default


def scene_note(name: str | None) -> str:
    """One line under the scene dropdown: what the scene is and whether it needs a download."""
    from qsci.scenes import list_scenes

    info = next((s for s in list_scenes() if s.name == name), None)
    if info is None:
        return ""
    where = "on disk" if info.available else f"{info.status} ({info.reason})"
    return f"{info.description} — {where}"


def _show_untrained() -> bool:
    return os.environ.get(SHOW_UNTRAINED_ENV, "").strip().lower() in ("1", "true", "yes")


def method_choices(with_table: bool = True) -> tuple[list[tuple[str, str]], list[str], str]:
    """(choices, default selection, markdown under the picker).

    Each label carries the method's benchmark score and bits (`ui.catalog`); the note is a table
    of score, bits, BOPs and source for every method, plus one line on what cannot run here.
    `with_table=False` skips the table: the app builds it on first page load with `method_note`.
    """
    from qsci import zoo
    from ui import catalog

    off = catalog.offline()
    cards = catalog.method_cards(show_unavailable_official=not off, count_official_bops=False)
    choices = [(c.label(), c.name) for c in cards]
    if _show_untrained():
        listed = {value for _, value in choices}
        for name in zoo.architecture_names():
            if name not in listed:
                choices.append((f"{name} (untrained: random weights)", name))
    values = {value for _, value in choices}
    default = [n for n in zoo.default_comparison() if n in values] or ([choices[0][1]] if choices else [])
    return choices, default, method_note() if with_table else ""


def method_note() -> str:
    """The table under the picker (score, bits, BOPs, weights) and what cannot run here."""
    from qsci import zoo
    from ui import catalog

    off = catalog.offline()
    notes = []
    missing_official = [m.name for m in zoo.list_methods() if m.source == "official" and not m.available]
    if off and missing_official:
        notes.append("The authors' checkpoints need network (downloads are off here).")
    missing_ours = [f"`{m.name}`" for m in zoo.list_methods() if m.source == "ours" and not m.available]
    if missing_ours:
        notes.append("Our checkpoints " + ", ".join(missing_ours) + " are listed but their files are missing.")
    table = catalog.cards_table(catalog.method_cards(show_unavailable_official=not off))
    return table + ("\n\n" + " ".join(notes) if notes else "")


# ---------------------------------------------------------------- inputs

def load_named_scene(name: str | None):
    """A scene from the dropdown (benchmark/real files are fetched on demand by `qsci.data`)."""
    from qsci.scenes import load_scene

    if not name:
        raise QSCIError("pick a scene first")
    return load_scene(str(name))


def _path(f) -> str | None:
    # Gradio hands uploads over as paths (str) or objects with a `.name`/`path`.
    if f is None:
        return None
    if isinstance(f, (str, os.PathLike)):
        return os.fspath(f)
    if isinstance(f, dict):
        return f.get("path") or f.get("name")
    return str(getattr(f, "path", None) or getattr(f, "name", None) or f)


def select_measurement(scene, index: int | str | None):
    """Keep one measurement of a multi-snapshot file (`None`/"all" keeps every one)."""
    if index is None or str(index).strip().lower() in ("", "all"):
        return scene
    n = scene.meas.shape[0]
    try:
        k = int(str(index).split()[0])
    except ValueError as exc:
        raise QSCIError(f"measurement index must be a number or 'all', got {index!r}") from exc
    if not 0 <= k < n:
        raise QSCIError(f"measurement index {k} is out of range: the file holds {n} measurement(s) (0..{n - 1})")
    gt = None if scene.gt is None else scene.gt[k:k + 1]
    info = dict(scene.info, measurement=k)
    return dataclasses.replace(scene, meas=scene.meas[k:k + 1], gt=gt, info=info,
                               name=f"{scene.name}[{k}]")


#: "module:function" that parses an upload in the child process (`qsci.io.isolate`); tests swap in
#: a stand-in that crashes, hangs or hogs memory (in a running app: env QSCI_UPLOAD_PARSER).
UPLOAD_PARSER = SCENE_FROM_FILES = "qsci.scenes:scene_from_files"
#: The upload tab's inspection: each file read and described once, the pair built from those reads
#: by SCENE_FROM_FILES (so the scene is the one that parser gives).
INSPECT_PARSER = "ui.filecard:inspect_files"
#: Parsed uploads by (files and their versions, options, parser): an inspected upload is not parsed
#: again when it is reconstructed with the default options.
UPLOADS = ResultCache(max_items=4, max_bytes=512 << 20)


def _upload_parser() -> str:
    return os.environ.get("QSCI_UPLOAD_PARSER", "").strip() or UPLOAD_PARSER


def _upload_key(paths, index: int | None, real_scaling: bool, scale: str, parser: str) -> tuple:
    def version(path):
        try:
            st = os.stat(path)
        except (OSError, TypeError):
            return None
        return st.st_mtime_ns, st.st_size

    return tuple(paths), tuple(version(p) for p in paths), index, bool(real_scaling), scale, parser


def _measurement_index(index: int | str | None) -> int | None:
    if index is None or str(index).strip().lower() in ("", "all"):
        return None
    try:
        return int(str(index).split()[0])
    except ValueError:
        raise QSCIError(f"measurement index must be a number or 'all', got {index!r}") from None


def load_upload(meas_file, mask_file, gt_file=None, index: int | str | None = "all", real_scaling: bool = False,
                scale: str = "auto"):
    """Measurement + mask (+ ground truth) files in any `qsci.io` format, parsed in a child process.

    The value scale follows `qsci.io.inspect` (one policy for app, API and CLI); a parser that
    crashes, hangs or runs out of memory ends as one QSCIError line while the app keeps serving.
    """
    from qsci.io.isolate import read_upload

    meas_path, mask_path, gt_path = _path(meas_file), _path(mask_file), _path(gt_file)
    if not meas_path:
        raise QSCIError("upload a measurement file (.mat, .npy, .npz, .h5, .tif or an image)")
    if not mask_path:
        raise QSCIError("upload the mask file that coded this measurement (T planes of the same size)")
    parser = _upload_parser()
    key = _upload_key((meas_path, mask_path, gt_path), _measurement_index(index), real_scaling, scale, parser)
    scene = UPLOADS.get(key)
    if scene is None:
        scene = read_upload(meas_path, mask_path, gt_path, parser=parser, real_scaling=bool(real_scaling),
                            scale=scale, measurement=key[2])
        UPLOADS.put(key, scene)
    return scene


def inspect_upload(meas_file, mask_file, gt_file=None) -> tuple[str, object | None, Exception | None]:
    """(a line per file, the pair's scene or None, what refused the pair or None) for the upload tab.

    Every file is parsed once, in one child process, and the pair is built from those reads; the
    scene is kept for `load_upload` with the default options. If that child dies (a crashing,
    hanging or hungry parser), each file is described in a child of its own, as is a stand-in
    parser's pair (QSCI_UPLOAD_PARSER).
    """
    from qsci.io.isolate import read_upload

    paths = tuple(_path(f) for f in (meas_file, mask_file, gt_file))
    pair = bool(paths[0] and paths[1])
    if not any(paths):
        return filecard.upload_summary(*paths), None, None
    if _upload_parser() != SCENE_FROM_FILES:
        files = filecard.upload_summary(*paths)
        if not pair:
            return files, None, None
        try:
            return files, load_upload(*paths), None
        except Exception as exc:
            return files, None, exc
    try:
        out = read_upload(*paths, parser=INSPECT_PARSER)
    except QSCIError as exc:  # the child ended without an answer: each file on its own
        return filecard.upload_summary(*paths), None, exc if pair else None
    if isinstance(out, dict):
        error = QSCIError(out["error"]) if "error" in out else None
        return filecard.upload_summary(*paths, described=out["files"]), None, error
    described = out.info.pop("files")
    UPLOADS.put(_upload_key(paths, None, False, "auto", SCENE_FROM_FILES), out)
    return filecard.upload_summary(*paths, described=described), out, None


def describe_scene(scene) -> str:
    """Markdown summary: CR, size, measurements, axis order, ground truth, notices and warnings.

    Notices say what was done to the input (e.g. a 0..255 measurement divided by 255), warnings
    what looks wrong (all-zero or saturated measurement, empty mask planes, odd mask density);
    the app shows this text beside the result for as long as the result is shown.
    """
    n, h, w = scene.meas.shape
    lines = [
        f"**{scene.name}** ({scene.kind}) — compression ratio **{scene.cr}**, size **{h}×{w}**, "
        f"**{n}** measurement(s), ground truth: **{'yes' if scene.gt is not None else 'no'}**",
    ]
    axes = scene.info.get("axis_order")
    if axes:
        lines.append(f"axis order detected in the file: `{axes}`")
    for note in scene.info.get("notices", []):
        lines.append(f"ℹ️ **Note:** {note}")
    warnings = scene.info.get("warnings")
    if warnings is None:
        from qsci.io.inspect import input_warnings

        warnings = input_warnings(scene.meas, scene.mask)
    for warning in warnings:
        lines.append(f"⚠️ **Warning:** {warning}")
    if scene.kind == "upload":
        lines.append("Real-camera measurements need the camera's own mask (the authors' `real_mask.mat`, first "
                     "CR planes), the CR it was taken at, and the real-camera scaling (meas / 255 × CR / 2).")
    return "\n\n".join(lines)


def measurement_options(scene) -> list[str]:
    """Dropdown entries for picking one measurement out of a file holding several."""
    n = int(scene.info.get("measurements_in_file", scene.meas.shape[0]))
    return ["all"] + [str(k) for k in range(n)] if n > 1 else ["all"]


def simulate_input(video_file, clip: str | None, mask_kind: str, seed: int | float, cr: int | float,
                   noise: float | None, size: int | float | None = 256):
    """An uploaded clip or an embedded one, coded with a chosen mask, ratio and noise."""
    from qsci.scenes import simulate_scene

    cr, seed = int(cr), int(seed)
    if cr < 2:
        raise QSCIError(f"compression ratio must be at least 2, got {cr}")
    video_path = _path(video_file)
    if video_path:
        from qsci.io.isolate import read_upload

        frames = read_upload(video_path, parser="qsci.io.readers:read_scene")  # child process, limits
        name = Path(video_path).stem
    elif clip:
        from qsci.scenes import check_request_size
        from qsci.synthetic import make_embedded_scene

        check_request_size(max(cr, 2 * cr), int(size or 256), int(size or 256), cr)  # before allocating
        frames = make_embedded_scene(str(clip), n_frames=max(cr, 2 * cr), size=int(size or 256))
        name = str(clip)
    else:
        raise QSCIError("upload a short video or pick an embedded clip to simulate")
    kind = "quantized_sci" if mask_kind == "quantized_sci" else "random"
    return simulate_scene(frames, cr=cr, mask=kind, seed=seed, read_noise_std=float(noise or 0.0),
                          name=f"{name} (simulated, CR {cr})")


# ---------------------------------------------------------------- running

def _scene_key(scene) -> str:
    return array_digest(scene.meas, scene.mask, scene.gt)


def reconstruct_all(scene, methods: list[str] | None, progress: Progress = None,
                    backend: str = "auto", cache: ResultCache = CACHE) -> Run:
    """Run every selected method; a failure is recorded for that method and the rest go on."""
    from qsci.engine import reconstruct

    methods = [m for m in dict.fromkeys(methods or []) if m]
    if not methods:
        raise QSCIError("select at least one method")
    run = Run(scene=scene, order=methods)
    key = _scene_key(scene)
    for i, name in enumerate(methods):
        def step(fraction: float, message: str = "", _i=i) -> None:
            if progress:
                progress((_i + min(max(float(fraction), 0.0), 1.0)) / len(methods), message or name)

        step(0.0, f"{name}: starting ({i + 1}/{len(methods)})")
        cached = cache.get((key, name, backend))
        if cached is not None:
            run.results[name] = cached
            step(1.0, f"{name}: cached")
            continue
        try:
            recon_step = step
            if weights.needs_download(name):  # the authors' checkpoint: first half of this method's bar
                weights.ensure(name, lambda f, m, _s=step: _s(0.5 * f, m))
                recon_step = lambda f, m="", _s=step: _s(0.5 + 0.5 * f, m)  # noqa: E731
            result = reconstruct(scene.meas, scene.mask, name, gt=scene.gt, backend=backend, progress=recon_step)
        except Cancelled:
            raise  # the user stopped the whole run, not just this method
        except QSCIError as exc:
            run.errors[name] = str(exc)
            continue
        except Exception as exc:  # a bug in one method must not lose the others' results
            run.errors[name] = f"internal error: {type(exc).__name__}: {exc}"
            continue
        cache.put((key, name, backend), result)
        run.results[name] = result
    if progress:
        progress(1.0, "all methods reconstructed")
    return run


# ---------------------------------------------------------------- run -> outputs

def _r(x: float | None, nd: int) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def summary(run: Run) -> dict:
    """The API's JSON: `{method: {"psnr", "ssim", "seconds", ...}}` (errors under "error")."""
    out = {}
    for name in run.order:
        if name in run.results:
            r = run.results[name]
            out[name] = {"psnr": _r(r.psnr_mean, 4), "ssim": _r(r.ssim_mean, 5), "seconds": round(r.seconds, 4),
                         "backend": r.backend, "weights": getattr(r, "weights", "trained")}
        else:
            out[name] = {"psnr": None, "ssim": None, "seconds": 0.0, "error": run.errors.get(name, "not run")}
    return out


def summary_rows(run: Run) -> list[list]:
    """Rows for the mean-score table (SUMMARY_HEADERS); failed methods show their message."""
    rows = []
    for name, s in summary(run).items():
        status = s.get("error") or "ok"
        rows.append([name, status, s["psnr"], s["ssim"], s["seconds"], s.get("backend", ""), s.get("weights", "")])
    return rows


def per_frame_table(run: Run) -> tuple[list[str], list[list]]:
    """(headers, rows): one row per frame, PSNR and SSIM columns per scored method."""
    scored = [n for n in run.order if n in run.results and run.results[n].psnr is not None]
    headers = ["frame"] + [f"{n} {k}" for n in scored for k in ("PSNR", "SSIM")]
    count = max((len(run.results[n].psnr) for n in scored), default=0)
    rows = []
    for i in range(count):
        row = [i]
        for n in scored:
            r = run.results[n]
            row += [_r(r.psnr[i], 2), _r(r.ssim[i], 4)]
        rows.append(row)
    return headers, rows


def figures(run: Run):
    """(PSNR vs BOPs, PSNR vs measured latency) Plotly figures.

    Latency is plotted even without scores (no ground truth): seconds per measurement as bars.
    Our BOPs (per 256x256x8 measurement) and presets come from the manifest, read once here.
    """
    from qsci.plots import paper_points
    from qsci.zoo import read_manifest

    entries = {e.get("name"): e for e in read_manifest().get("models", [])}
    paper = [(label.replace(" (paper)", ""), bops, psnr) for label, bops, psnr in paper_points()]
    ours_ops, ours_time, lines, shown_presets = [], [], [], []
    for name in run.order:
        r = run.results.get(name)
        if r is None:
            continue
        per_meas = r.seconds / max(1, r.frames.shape[0])  # comparable across scenes of any length
        ours_time.append((name, per_meas, r.psnr_mean))
        if r.psnr_mean is None:
            continue
        entry = entries.get(name) or {}
        if entry.get("bops"):
            ours_ops.append((name, float(entry["bops"]), r.psnr_mean))
            if entry.get("preset"):
                shown_presets.append(str(entry["preset"]).upper())
        else:
            lines.append((name, r.psnr_mean))
    kinds = sorted(set(shown_presets))
    note = f"our {'/'.join(kinds)}-preset models" if kinds else "our models"
    colors = {name: charts.color_for(k) for k, name in enumerate(run.order)}  # one colour per method in both
    return (charts.psnr_vs_ops(ours_ops, paper, "BOPs per 256×256×8 measurement (log scale)", lines, note, colors),
            charts.psnr_vs_latency(ours_time, colors, benched(read_manifest(), set(run.results))))


def benched(manifest: dict, shown: set[str]) -> list[tuple[str, float, float]]:
    """(name, bench seconds, benchmark mean PSNR) of the manifest's methods not run on the page:
    what `bash scripts/bench_table.sh` measured (`python -m training.export latency`) and
    `python -m qsci evaluate` scored on Drop8/Runner8/Traffic."""
    entries = [(e.get("name"), e) for e in manifest.get("models", [])] + [("gap-tv", manifest.get("gap_tv") or {})]
    points = []
    for name, entry in entries:
        seconds = (entry.get("latency") or {}).get("seconds")
        scores = entry.get("metrics", entry).get("quantized_sci") or {}
        psnr = (scores.get("mean") or {}).get("psnr")
        if name and name not in shown and seconds and psnr is not None:
            points.append((name, float(seconds), float(psnr)))
    return points


def frame_view(run: Run | None, index: float | int | None) -> str:
    """The results panel (HTML): every method at one frame, zoomed crops and error maps."""
    if run is None or not run.results:
        return ""
    recons = {n: run.results[n].frames for n in run.order if n in run.results}
    scores = {n: (run.results[n].psnr, run.results[n].ssim) for n in recons}
    return panel.results_html(run.scene.gt, recons, index, scores, _method_labels(list(recons)))


def _method_labels(names: list[str]) -> dict[str, str]:
    # "4-bit, ours" etc. under each tile, from the same cards as the method picker.
    from qsci import zoo

    out = {}
    for name in names:
        try:
            m = zoo.get_method(name)
        except QSCIError:
            continue
        bits = "" if m.source == "classical" else ("fp32, " if m.bits >= 32 else f"{m.bits}-bit, ")
        out[name] = bits + catalog.SOURCE_TEXT.get(m.source, m.source)
    return out


def input_images(scene) -> list[tuple[np.ndarray, str]]:
    """The first coded measurement and the mask planes as pictures."""
    return [(views.measurement_image(scene.meas, 0), f"measurement 0 of {scene.meas.shape[0]}"),
            (views.mask_mosaic(scene.mask, max_planes=4, cols=2), f"mask: first {min(4, scene.cr)} of {scene.cr} planes")]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "method"


def new_workdir() -> Path:
    """A fresh per-request folder; folders older than an hour are removed on the way."""
    _WORK_ROOT.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in _WORK_ROOT.iterdir():
        try:
            if now - old.stat().st_mtime > _WORK_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix="run-", dir=_WORK_ROOT))


def write_outputs(run: Run, workdir: Path | None = None, formats: tuple[str, ...] = (".npz", ".mat"),
                  progress: Progress = None) -> Run:
    """Write a video per method (+ ground truth) and the reconstructions for download.

    `progress(fraction, message)` is called before each file, so the page says what it is doing.
    """
    from qsci import io

    workdir = Path(workdir) if workdir else new_workdir()
    names = [n for n in run.order if n in run.results]
    total = len(names) * (1 + len(formats)) + (run.scene.gt is not None)
    done = 0

    def step(what: str) -> None:
        nonlocal done
        if progress:
            progress(done / max(total, 1), f"writing {what} ({done + 1}/{total})")
        done += 1

    if run.scene.gt is not None:
        step("the ground-truth video")
        run.videos["ground truth"] = io.write_video(workdir / "ground_truth.mp4", run.scene.gt, VIDEO_FPS)
    for name in names:
        r = run.results[name]
        stem = _safe(name)
        try:
            step(f"{name} video")
            # (N, T, H, W) frames go in as they are: the writer flattens and clips them once
            run.videos[name] = io.write_video(workdir / f"{stem}.mp4", r.frames, VIDEO_FPS)
            for ext in formats:
                step(f"{name} {ext}")
                run.files.append(Path(io.save_frames(workdir / f"{stem}{ext}", r.frames) or workdir / f"{stem}{ext}"))
        except QSCIError as exc:
            run.errors.setdefault(name, f"could not write files: {exc}")
    run.files += [Path(p) for p in run.videos.values()]
    if progress:
        progress(1.0, "files written")
    return run


def reconstruct_scene_json(scene: str, methods: list[str]) -> dict:
    """The `reconstruct_scene` API: a named scene through several methods, scores as JSON."""
    return summary(reconstruct_all(load_named_scene(scene), list(methods or [])))
