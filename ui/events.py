"""Gradio glue: adapt `ui.handlers` to event signatures, progress bars and `gr.Error`.

Kept apart from `ui.handlers` so the handlers stay free of Gradio, and apart from `app.py` so the
app file is only layout and wiring. Every user mistake becomes `gr.Error(<QSCIError message>)`;
anything unexpected is logged with its traceback on the server and shown as one line.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import pandas as pd

from qsci.errors import QSCIError
from ui import handlers, status

log = logging.getLogger("qsci.app")

_stop_flags: OrderedDict[str, threading.Event] = OrderedDict()
_stop_lock = threading.Lock()


_active: set[str] = set()  # sessions with a reconstruction in progress


def _session(request: gr.Request | None) -> str:
    return str(getattr(request, "session_hash", None) or "no-session")


def _stop_flag(request: gr.Request | None) -> threading.Event:
    """The Stop flag of one browser session (bounded: old sessions are forgotten)."""
    key = _session(request)
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


#: How the progress bar is shared: reconstruction first, then rendering, then writing the files.
RECON_SHARE, RENDER_AT = 0.8, 0.82

#: What a Reconstruct button fills, by name; this tuple is the one place their order is defined.
RUN_OUTPUTS = ("run_state", "status_line", "scene_info", "inputs_view", "frame", "results", "videos",
               "summary", "per_frame", "plot_ops", "plot_time", "files", "summary_json")


def run_outputs(components: dict) -> list:
    """The output list of the Reconstruct buttons from components named as in RUN_OUTPUTS."""
    missing = sorted(set(RUN_OUTPUTS) - set(components))
    if missing:
        raise KeyError(f"run outputs without a component: {missing}")
    return [components[name] for name in RUN_OUTPUTS]


def _in_order(values: dict) -> tuple:
    """Values keyed like RUN_OUTPUTS, as the tuple Gradio expects; unnamed outputs are left alone."""
    return tuple(values.get(name, gr.skip()) for name in RUN_OUTPUTS)


def _scaled(report, lo: float, hi: float):
    """A progress callback mapping [0, 1] onto [lo, hi] of the page's bar."""
    def inner(fraction: float, message: str = "") -> None:
        report(lo + (hi - lo) * min(max(float(fraction), 0.0), 1.0), message)

    return inner


def _outputs(run: handlers.Run, report=None, started: float | None = None) -> tuple:
    """Everything the page shows after a run (`RUN_OUTPUTS`).

    The status line comes second: it names the methods that failed and stays until the next run.
    Files are written last, with their own progress messages.
    """
    if report:
        report(RENDER_AT, "rendering pictures and charts")
    panel_html = handlers.frame_view(run, 0)
    fig_ops, fig_time = handlers.figures(run)
    headers, rows = handlers.per_frame_table(run)
    count = run.frame_count
    handlers.write_outputs(run, progress=_scaled(report, RENDER_AT + 0.03, 1.0) if report else None)
    videos = [(str(p), label) for label, p in run.videos.items()]
    return _in_order(dict(
        run_state=run,
        status_line=status.done(run, None if started is None else time.monotonic() - started),
        scene_info=handlers.describe_scene(run.scene),
        inputs_view=handlers.input_images(run.scene),
        frame=gr.Slider(minimum=0, maximum=max(count - 1, 1), value=0, step=1, interactive=count > 1,
                        label=f"frame (0..{count - 1}, all methods)"),
        results=panel_html,
        videos=videos,
        summary=pd.DataFrame(handlers.summary_rows(run), columns=handlers.SUMMARY_HEADERS),
        per_frame=pd.DataFrame(rows, columns=headers),
        plot_ops=fig_ops,
        plot_time=fig_time,
        files=[str(p) for p in run.files],
        summary_json=handlers.summary(run),
    ))


class _Ticker:
    """Progress that keeps moving inside long steps: the last step is re-reported with its elapsed
    seconds every `interval` s (honest: the fraction stays where the work is; only the clock runs)."""

    def __init__(self, progress, interval: float = 1.0, clock=time.monotonic):
        self.progress, self.interval, self.clock = progress, interval, clock
        self.fraction, self.message, self.since = 0.0, "", clock()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, fraction: float, desc: str = "") -> None:
        with self._lock:
            if desc != self.message:
                self.since = self.clock()
            self.fraction, self.message = float(fraction), desc
        self.progress(fraction, desc=desc)

    def tick(self) -> str | None:
        """Re-report the current step with its elapsed time; returns the message (None: too soon)."""
        with self._lock:
            elapsed = self.clock() - self.since
            if elapsed < self.interval or not self.message:
                return None
            fraction, message = self.fraction, f"{self.message} · {elapsed:.0f} s"
        self.progress(fraction, desc=message)
        return message

    def __enter__(self):
        def loop():
            while not self._done.wait(self.interval):
                try:
                    self.tick()
                except Exception:  # a closed page must not kill the run
                    return
        self._thread = threading.Thread(target=loop, daemon=True, name="qsci-progress")
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        return False


def _kept(message_html: str) -> tuple:
    """A status line and nothing else: the previous results and all inputs stay as they are."""
    return _in_order({"status_line": message_html})


@contextmanager
def _status_on_error(what: str, box: list):
    """UI runs: a failure becomes the persistent status line (no toast, no error badges)."""
    try:
        yield
    except handlers.Cancelled:
        box.append(status.stopped())
    except QSCIError as exc:
        box.append(status.error(f"Cannot {what}", str(exc)))
    except Exception as exc:
        log.exception("unexpected error while trying to %s", what)
        box.append(status.error("Internal error", f"while trying to {what}: {type(exc).__name__}: {exc}"))


def _ui_run(make_scene, what: str, methods, progress, request):
    """Shared body of the three Reconstruct buttons (generator: "running" first, then results)."""
    started = time.monotonic()
    stop = _stop_flag(request)
    stop.clear()
    with _stop_lock:
        _active.add(_session(request))
    try:
        yield from _ui_steps(make_scene, what, methods, progress, stop, started)
    finally:
        with _stop_lock:
            _active.discard(_session(request))


def _ui_steps(make_scene, what: str, methods, progress, stop, started):
    yield _kept(status.running())
    box: list = []
    scene = None
    with _status_on_error(what, box):
        scene = make_scene()
    if box:
        yield _kept(box[0])
        return
    out = None
    with _Ticker(progress) as ticker, _status_on_error("reconstruct", box):
        report = _progress_adapter(ticker, stop)
        run = handlers.reconstruct_all(scene, methods, _scaled(report, 0.0, RECON_SHARE))
        out = _outputs(run, report, started)
    yield _kept(box[0]) if box else out


def run_scene(scene_name: str, which: str, methods: list[str], request: gr.Request, progress=gr.Progress()):
    """Benchmark / real / embedded scene tab; `which` is "all" or "first" measurement."""
    def make():
        progress(0.0, desc="loading the scene")
        scene = handlers.load_named_scene(scene_name)
        return handlers.select_measurement(scene, 0 if str(which).startswith("first") else "all")

    yield from _ui_run(make, "load the scene", methods, progress, request)


def describe_scene_choice(scene_name: str) -> str:
    """Scene dropdown: say what the scene is and whether it will be fetched."""
    with user_errors("look up the scene"):
        return handlers.scene_note(scene_name)


def inspect_upload(meas_file, mask_file, gt_file):
    """Show what was read from each file as soon as it arrives; CR, size and axis order of the pair.

    A file that cannot be read is reported here, in the upload tab's own info line (no toast).
    """
    reset = gr.Dropdown(choices=["all"], value="all")
    files, scene, exc = handlers.inspect_upload(meas_file, mask_file, gt_file)  # each file parsed once
    if isinstance(exc, QSCIError):
        return f"{files}\n\n**✖ Cannot use these files together:** {exc}", reset
    if exc is not None:
        log.error("unexpected error while inspecting an upload", exc_info=exc)
        return f"{files}\n\n**✖ Internal error while reading the uploaded files:** {type(exc).__name__}: {exc}", reset
    if scene is None:
        return files, reset
    options = handlers.measurement_options(scene)
    return (handlers.describe_scene(scene) + "\n\n" + files,
            gr.Dropdown(choices=options, value="all", interactive=len(options) > 1))


def api_inspect_upload(meas_file, mask_file, gt_file=None) -> dict:
    """What the app read from an upload: {"name", "cr", "height", "width", "measurements",
    "ground_truth", "axis_order", "notices", "warnings"} (errors are one-line API errors)."""
    with user_errors("read the uploaded files"):
        scene = handlers.load_upload(meas_file, mask_file, gt_file)
        n, h, w = scene.meas.shape
        info = scene.info or {}
        return {"name": scene.name, "cr": int(scene.cr), "height": int(h), "width": int(w), "measurements": int(n),
                "ground_truth": scene.gt is not None, "axis_order": info.get("axis_order"),
                "notices": list(info.get("notices", []) or []), "warnings": list(info.get("warnings", []) or [])}


def run_upload(meas_file, mask_file, gt_file, index, real_scaling, methods, request: gr.Request,
               progress=gr.Progress()):
    """Upload tab."""
    def make():
        progress(0.0, desc="reading the files")
        return handlers.load_upload(meas_file, mask_file, gt_file, index, real_scaling)

    yield from _ui_run(make, "read the uploaded files", methods, progress, request)


def run_simulate(video_file, clip, mask_kind, seed, cr, noise, size, methods, request: gr.Request,
                 progress=gr.Progress()):
    """Simulate-your-own tab."""
    def make():
        progress(0.0, desc="simulating the measurement")
        return handlers.simulate_input(video_file, clip, mask_kind, seed, cr, noise, size)

    yield from _ui_run(make, "simulate the measurement", methods, progress, request)


def simulate_source(video_file):
    """Simulate tab: say which input is used; grey out the clip controls while a video is given."""
    if video_file:
        name = Path(handlers._path(video_file) or "").name
        return (status.note(f"Using the uploaded video <code>{html.escape(name)}</code>; the embedded clip and "
                            "its size are ignored (remove the video to use them)."),
                gr.Dropdown(interactive=False), gr.Radio(interactive=False))
    return (status.note("Using the embedded clip (upload a video above to use your own instead)."),
            gr.Dropdown(interactive=True), gr.Radio(interactive=True))


def stop_run(request: gr.Request):
    """Stop button: the running reconstruction of this session ends at its next progress step.

    Returns the status line ("stopped"); results already on the page and every input stay.
    """
    with _stop_lock:
        running = _session(request) in _active
    if not running:
        return gr.skip()  # nothing to stop: the status line keeps what it says
    _stop_flag(request).set()
    return status.stopped()


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


def api_reconstruct_upload(meas_file, mask_file, gt_file=None, methods=None):
    """Reconstruct uploaded files; returns the same JSON as `reconstruct_scene` and the downloads."""
    with user_errors("reconstruct the upload"):
        scene = handlers.load_upload(meas_file, mask_file, gt_file)
        run = handlers.reconstruct_all(scene, list(methods or []))
        handlers.write_outputs(run, formats=(".npz",))
        return handlers.summary(run), [str(p) for p in run.files if Path(p).suffix == ".npz"]


def api_reconstruct_simulated(video_file=None, clip=None, mask_kind="random", seed=0, cr=8, noise=0.0, size=256,
                              methods=None) -> dict:
    """Simulate a measurement (uploaded video, else an embedded clip) and reconstruct it.

    Returns the same JSON as `reconstruct_scene`: {method: {"psnr", "ssim", "seconds", ...}}.
    """
    with user_errors("simulate and reconstruct"):
        scene = handlers.simulate_input(video_file, clip, mask_kind, seed if seed is not None else 0,
                                        cr if cr is not None else 8, noise, size if size is not None else 256)
        return handlers.summary(handlers.reconstruct_all(scene, list(methods or [])))
