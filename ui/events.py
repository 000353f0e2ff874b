"""Gradio glue: adapt `ui.handlers` to event signatures, progress bars and `gr.Error`.

Kept apart from `ui.handlers` so the handlers stay free of Gradio, and apart from `app.py` so the
app file is only layout and wiring. Every user mistake becomes `gr.Error(<QSCIError message>)`;
anything unexpected is logged with its traceback on the server and shown as one line.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import pandas as pd

from qsci.errors import QSCIError
from ui import handlers

log = logging.getLogger("qsci.app")

_stop_flags: OrderedDict[str, threading.Event] = OrderedDict()
_stop_lock = threading.Lock()


def _stop_flag(request: gr.Request | None) -> threading.Event:
    """The Stop flag of one browser session (bounded: old sessions are forgotten)."""
    key = str(getattr(request, "session_hash", None) or "no-session")
    with _stop_lock:
        flag = _stop_flags.pop(key, None) or threading.Event()
        _stop_flags[key] = flag
        while len(_stop_flags) > 1000:
            _stop_flags.popitem(last=False)
        return flag


@contextmanager
def user_errors(what: str):
    """Turn library errors into a readable pop-up; never leak a stack trace to the page."""
    try:
        yield
    except gr.Error:
        raise
    except handlers.Cancelled:
        raise gr.Error("stopped", title="Stopped", print_exception=False) from None
    except QSCIError as exc:
        raise gr.Error(str(exc), title=f"Cannot {what}", print_exception=False) from None
    except Exception as exc:
        log.exception("unexpected error while trying to %s", what)
        raise gr.Error(f"internal error while trying to {what}: {type(exc).__name__}: {exc}",
                       title="Internal error", print_exception=False) from None


def _progress_adapter(progress: gr.Progress, stop: threading.Event | None = None):
    """Engine progress -> Gradio progress bar; also where a Stop request takes effect."""
    def report(fraction: float, message: str = "") -> None:
        if stop is not None and stop.is_set():
            raise handlers.Cancelled("stopped by the user")
        progress(fraction, desc=message)

    return report


def _outputs(run: handlers.Run) -> tuple:
    """Everything the page shows after a run, in the order of `app.RUN_OUTPUTS`."""
    images, errors = handlers.frame_view(run, 0)
    fig_ops, fig_time = handlers.figures(run)
    headers, rows = handlers.per_frame_table(run)
    count = run.frame_count
    videos = [(str(p), label) for label, p in run.videos.items()]
    for name, message in run.errors.items():
        gr.Warning(f"{name}: {message}", title="Method failed")
    return (
        run,
        handlers.describe_scene(run.scene),
        handlers.input_images(run.scene),
        gr.Slider(minimum=0, maximum=max(count - 1, 1), value=0, step=1, interactive=count > 1,
                  label=f"frame (0..{count - 1}, all methods)"),
        gr.Gallery(value=images, columns=max(len(images), 4)),  # equal tiles in both rows
        gr.Gallery(value=errors, columns=max(len(images), 4)),
        videos,
        pd.DataFrame(handlers.summary_rows(run), columns=handlers.SUMMARY_HEADERS),
        pd.DataFrame(rows, columns=headers),
        fig_ops,
        fig_time,
        [str(p) for p in run.files],
        handlers.summary(run),
    )


def _run(scene, methods, progress, request) -> tuple:
    stop = _stop_flag(request)
    stop.clear()
    with user_errors("reconstruct"):
        run = handlers.reconstruct_all(scene, methods, _progress_adapter(progress, stop))
        handlers.write_outputs(run)
        return _outputs(run)


def run_scene(scene_name: str, which: str, methods: list[str], request: gr.Request, progress=gr.Progress()):
    """Benchmark / real / embedded scene tab; `which` is "all" or "first" measurement."""
    progress(0.0, desc="loading the scene")
    with user_errors("load the scene"):
        scene = handlers.load_named_scene(scene_name)
        scene = handlers.select_measurement(scene, 0 if str(which).startswith("first") else "all")
    return _run(scene, methods, progress, request)


def describe_scene_choice(scene_name: str) -> str:
    """Scene dropdown: say what the scene is and whether it will be fetched."""
    with user_errors("look up the scene"):
        return handlers.scene_note(scene_name)


def inspect_upload(meas_file, mask_file, gt_file):
    """Show CR, size and axis order as soon as both files are there; offer measurement choice."""
    if not meas_file or not mask_file:
        return "Upload a measurement and its mask.", gr.Dropdown(choices=["all"], value="all")
    with user_errors("read the uploaded files"):
        scene = handlers.load_upload(meas_file, mask_file, gt_file)
        options = handlers.measurement_options(scene)
        return handlers.describe_scene(scene), gr.Dropdown(choices=options, value="all", interactive=len(options) > 1)


def run_upload(meas_file, mask_file, gt_file, index, real_scaling, methods, request: gr.Request,
               progress=gr.Progress()):
    """Upload tab."""
    progress(0.0, desc="reading the files")
    with user_errors("read the uploaded files"):
        scene = handlers.load_upload(meas_file, mask_file, gt_file, index, real_scaling)
    return _run(scene, methods, progress, request)


def run_simulate(video_file, clip, mask_kind, seed, cr, noise, size, methods, request: gr.Request,
                 progress=gr.Progress()):
    """Simulate-your-own tab."""
    progress(0.0, desc="simulating the measurement")
    with user_errors("simulate the measurement"):
        scene = handlers.simulate_input(video_file, clip, mask_kind, seed, cr, noise, size)
    return _run(scene, methods, progress, request)


def stop_run(request: gr.Request):
    """Stop button: the running reconstruction of this session ends at its next progress step."""
    _stop_flag(request).set()
    gr.Info("Stopping after the current step…")


def show_frame(run, index):
    """Frame slider: re-render every method at the same frame (no recomputation)."""
    with user_errors("show the frame"):
        return handlers.frame_view(run, index)


def api_reconstruct_scene(scene: str, methods: list[str]) -> dict:
    """Reconstruct a named scene (see `python -m qsci scenes`) with methods (see `python -m qsci models`).

    Returns {method: {"psnr": float|None, "ssim": float|None, "seconds": float, ...}}; a method
    that failed carries "error" with its message instead of scores.
    """
    with user_errors("reconstruct the scene"):
        return handlers.reconstruct_scene_json(scene, methods)


def api_reconstruct_upload(meas_file, mask_file, gt_file, methods):
    """Reconstruct uploaded files; returns the same JSON as `reconstruct_scene` and the downloads."""
    with user_errors("reconstruct the upload"):
        scene = handlers.load_upload(meas_file, mask_file, gt_file)
        run = handlers.reconstruct_all(scene, list(methods or []))
        handlers.write_outputs(run, formats=(".npz",))
        return handlers.summary(run), [str(p) for p in run.files if Path(p).suffix == ".npz"]
