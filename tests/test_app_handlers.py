"""The app's pure handlers and Gradio glue, without a server (tiny inputs, GAP-TV only)."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
import torch

from qsci.errors import QSCIError
from ui import charts, events, handlers, status
from ui.cache import ResultCache


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Tiny tensors on a shared 2-core machine: one thread is far faster than two spinning ones.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_scene():
    from qsci.scenes import simulate_scene

    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    frames = np.stack([0.5 + 0.4 * np.sin(5 * xx + 0.4 * t) * np.cos(3 * yy) for t in range(16)]).astype(np.float32)
    return simulate_scene(frames, cr=8, mask="random", seed=1, name="tiny")


@pytest.fixture(scope="module")
def tiny_run(tiny_scene):
    return handlers.reconstruct_all(tiny_scene, ["gap-tv", "no-such-method"], cache=ResultCache())


def test_scene_choices_offer_an_available_default():
    choices, default = handlers.scene_choices()
    names = [v for _, v in choices]
    assert any(n.startswith("embedded-") for n in names) and "kobe" in names
    assert default in names


def test_method_choices_always_include_gap_tv(monkeypatch):
    monkeypatch.delenv(handlers.SHOW_UNTRAINED_ENV, raising=False)
    choices, default, _note = handlers.method_choices()
    assert "gap-tv" in [v for _, v in choices] and default
    assert not any("untrained" in label for label, _ in choices)
    monkeypatch.setenv(handlers.SHOW_UNTRAINED_ENV, "1")
    labels = [label for label, _ in handlers.method_choices()[0]]
    assert any("untrained" in label for label in labels)
    assert handlers.method_choices(with_table=False)[2] == ""
    table = handlers.method_note()
    assert "| `gap-tv` |" in table and "GAP-TV is the classical baseline" in table


def test_reconstruct_all_keeps_results_when_one_method_fails(tiny_run):
    assert set(tiny_run.results) == {"gap-tv"}
    assert "unknown method" in tiny_run.errors["no-such-method"]
    s = handlers.summary(tiny_run)
    assert s["gap-tv"]["psnr"] > 15 and 0 < s["gap-tv"]["ssim"] <= 1 and s["gap-tv"]["seconds"] > 0
    assert s["no-such-method"]["psnr"] is None and s["no-such-method"]["error"]
    rows = handlers.summary_rows(tiny_run)
    assert rows[0][:2] == ["gap-tv", "ok"] and rows[1][1].startswith("unknown method")


def test_progress_is_reported_per_method_and_results_are_cached(tiny_scene):
    cache, seen = ResultCache(), []
    first = handlers.reconstruct_all(tiny_scene, ["gap-tv"], progress=lambda f, m: seen.append((f, m)), cache=cache)
    assert seen[0][0] == 0.0 and seen[-1] == (1.0, "all methods reconstructed")
    assert all(0.0 <= f <= 1.0 for f, _ in seen) and any("gap-tv" in m for _, m in seen)
    again = handlers.reconstruct_all(tiny_scene, ["gap-tv"], cache=cache)
    assert again.results["gap-tv"] is first.results["gap-tv"]
    with pytest.raises(QSCIError, match="at least one method"):
        handlers.reconstruct_all(tiny_scene, [], cache=cache)


def test_tables_figures_and_frame_views(tiny_run):
    headers, rows = handlers.per_frame_table(tiny_run)
    assert headers == ["frame", "gap-tv PSNR", "gap-tv SSIM"] and len(rows) == 16
    ops, latency = handlers.figures(tiny_run)
    assert any(t.name == "published (paper)" for t in ops.data)
    assert any(t.name.startswith("gap-tv") and t.mode == "lines" for t in ops.data)  # no BOPs: a line
    assert [t.name for t in latency.data][0] == "gap-tv"
    benched = [t for t in latency.data if t.name == charts.BENCHED_NAME]  # the manifest's bench seconds
    assert all("gap-tv" not in t.text for t in benched)  # a method run here is not also a reference
    html = handlers.frame_view(tiny_run, 9)
    assert "Frame 9 of 16" in html and 'data-method="ground truth"' in html and "gap-tv · classical" in html
    assert html.count('class="qsci-tile qsci-crop"') == 2 and html.count('class="qsci-tile qsci-error"') == 1
    assert handlers.frame_view(None, 0) == ""
    assert [img.dtype for img, _ in handlers.input_images(tiny_run.scene)] == [np.uint8, np.uint8]


def test_without_ground_truth_the_panel_says_why_and_latency_is_still_plotted(tiny_scene):
    import dataclasses

    blind = dataclasses.replace(tiny_scene, gt=None, name="blind")
    run = handlers.reconstruct_all(blind, ["gap-tv"], cache=ResultCache())
    html = handlers.frame_view(run, 0)
    assert "No ground truth" in html and "qsci-tile qsci-error" not in html
    _, latency = handlers.figures(run)
    assert [t.type for t in latency.data] == ["bar"] and latency.data[0].x[0] > 0
    assert "No ground truth" in status.done(run)


def test_write_outputs_gives_videos_and_downloads(tiny_run, tmp_path):
    run = handlers.Run(scene=tiny_run.scene, results=dict(tiny_run.results), order=["gap-tv"])
    seen = []
    handlers.write_outputs(run, tmp_path, progress=lambda f, m: seen.append((f, m)))
    names = sorted(p.name for p in run.files)
    assert "gap-tv.npz" in names and "gap-tv.mat" in names
    assert set(run.videos) == {"ground truth", "gap-tv"} and all(p.is_file() for p in run.files)
    assert np.load(tmp_path / "gap-tv.npz")["recon"].shape[-3:] == (8, 32, 32)
    # the page is told about every file before it is written, then that the files are done
    assert [m for _, m in seen[:-1]] == ["writing the ground-truth video (1/4)", "writing gap-tv video (2/4)",
                                         "writing gap-tv .npz (3/4)", "writing gap-tv .mat (4/4)"]
    assert seen[-1] == (1.0, "files written") and [f for f, _ in seen] == sorted(f for f, _ in seen)


def test_select_measurement(tiny_scene):
    one = handlers.select_measurement(tiny_scene, "1")
    assert one.meas.shape[0] == 1 and one.gt.shape[0] == 1
    np.testing.assert_array_equal(one.meas[0], tiny_scene.meas[1])
    assert handlers.select_measurement(tiny_scene, "all") is tiny_scene
    with pytest.raises(QSCIError, match="out of range"):
        handlers.select_measurement(tiny_scene, 5)
    assert handlers.measurement_options(tiny_scene) == ["all", "0", "1"]


def test_upload_paths(tiny_scene, tmp_path):
    np.save(tmp_path / "meas.npy", tiny_scene.meas)
    np.save(tmp_path / "mask.npy", tiny_scene.mask)
    scene = handlers.load_upload(str(tmp_path / "meas.npy"), {"path": str(tmp_path / "mask.npy")}, None, "0")
    assert scene.meas.shape == (1, 32, 32) and scene.cr == 8 and scene.gt is None
    text = handlers.describe_scene(scene)
    assert "compression ratio **8**" in text and "32×32" in text
    with pytest.raises(QSCIError, match="mask"):
        handlers.load_upload(str(tmp_path / "meas.npy"), None)
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(QSCIError, match="junk.npy"):
        handlers.load_upload(str(tmp_path / "junk.npy"), str(tmp_path / "mask.npy"))


def test_simulate_input_checks_its_arguments():
    with pytest.raises(QSCIError, match="upload a short video or pick"):
        handlers.simulate_input(None, None, "random", 0, 8, 0.0)
    with pytest.raises(QSCIError, match="at least 2"):
        handlers.simulate_input(None, "embedded-camera-pan", "random", 0, 1, 0.0)


def test_errors_become_gradio_errors_with_the_library_message():
    with pytest.raises(gr.Error) as excinfo:
        with events.user_errors("load"):
            raise QSCIError("meas.mat: expected (H, W) or (H, W, K), got 4 axes")
    assert excinfo.value.message == "meas.mat: expected (H, W) or (H, W, K), got 4 axes"
    with pytest.raises(gr.Error) as excinfo:
        with events.user_errors("load"):
            raise ZeroDivisionError("boom")
    assert excinfo.value.message.startswith("internal error while trying to load: ZeroDivisionError")


def test_stop_ends_the_whole_run_at_the_next_progress_step(tiny_scene):
    flag = events._stop_flag(None)
    flag.set()
    report = events._progress_adapter(lambda *a, **k: None, flag)
    with pytest.raises(handlers.Cancelled):
        handlers.reconstruct_all(tiny_scene, ["gap-tv", "no-such-method"], progress=report, cache=ResultCache())
    with pytest.raises(gr.Error, match="stopped"):
        with events.user_errors("reconstruct"):
            raise handlers.Cancelled("stopped by the user")
    flag.clear()


def test_simulate_from_an_uploaded_video(tmp_path):
    from pathlib import Path

    from qsci import io

    frames = np.random.default_rng(0).random((16, 32, 48)).astype(np.float32)
    video = io.write_video(tmp_path / "clip.mp4", frames, 8)
    scene = handlers.simulate_input(Path(video), None, "random", 2, 8, 0.0)
    assert scene.meas.shape == (2, 32, 48) and scene.gt.shape == (2, 8, 32, 48) and scene.cr == 8


def test_demo_queues_every_reconstruction_in_one_group():
    import app

    demo = app.build_demo()
    fns = list(demo.fns.values())
    public = {fn.api_name for fn in fns if getattr(fn, "api_visibility", "public") == "public"}
    assert public == {"reconstruct_scene", "reconstruct_upload", "reconstruct_simulated", "inspect_upload"}
    heavy = [fn for fn in fns if fn.name in ("run_scene", "run_upload", "run_simulate", "api_reconstruct_scene",
                                              "api_reconstruct_upload", "api_reconstruct_simulated")]
    assert len(heavy) == 6 and {fn.concurrency_id for fn in heavy} == {app.HEAVY}
    # the three Reconstruct buttons fill the components that RUN_OUTPUTS names, in its order
    ids = {"status_line": "status", "scene_info": "scene-info", "results": "results", "summary": "summary",
           "per_frame": "per-frame", "plot_ops": "plot-ops", "plot_time": "plot-time", "files": "files"}
    for fn in (f for f in fns if f.name in ("run_scene", "run_upload", "run_simulate")):
        assert len(fn.outputs) == len(events.RUN_OUTPUTS)
        assert {n: fn.outputs[events.RUN_OUTPUTS.index(n)].elem_id for n in ids} == ids
    with pytest.raises(KeyError, match="plot_time"):
        events.run_outputs({n: n for n in events.RUN_OUTPUTS if n != "plot_time"})
    assert demo._queue.max_size == app.QUEUE_SIZE and demo._queue.default_concurrency_limit == app.CONCURRENCY


def _drain(gen) -> list:
    return list(gen)


def test_ui_errors_go_to_the_status_line_and_leave_the_page_alone():
    outs = _drain(events.run_scene("embedded-camera-pan", "first", [], None, progress=lambda *a, **k: None))
    first, last = outs[0], outs[-1]
    status_at = events.RUN_OUTPUTS.index("status_line")
    assert len(last) == len(events.RUN_OUTPUTS) == 13 and "Running" in first[status_at]
    assert "select at least one method" in last[status_at] and 'data-kind="error"' in last[status_at]
    assert all(isinstance(x, type(gr.skip())) for i, x in enumerate(last) if i != status_at)  # no output touched
    outs = _drain(events.run_scene("no-such-scene", "all", ["gap-tv"], None, progress=lambda *a, **k: None))
    assert "Cannot load the scene" in outs[-1][status_at]


def test_stop_note_and_simulate_source():
    assert isinstance(events.stop_run(None), type(gr.skip()))  # nothing running: status line untouched
    assert not events._stop_flag(None).is_set()
    events._active.add(events._session(None))
    try:
        note = events.stop_run(None)
        assert "Stopped" in note and "inputs are kept" in note and events._stop_flag(None).is_set()
    finally:
        events._active.discard(events._session(None))
        events._stop_flag(None).clear()
    note, clip, size = events.simulate_source("/tmp/my clip.mp4")
    assert "my clip.mp4" in note and clip.interactive is False and size.interactive is False
    note, clip, size = events.simulate_source(None)
    assert "embedded clip" in note and clip.interactive is True


def test_scene_note_says_whether_a_download_is_needed():
    from qsci.scenes import list_scenes

    scenes = list_scenes()
    here = next(s for s in scenes if s.available)
    assert "on disk" in handlers.scene_note(here.name)
    missing = next((s for s in scenes if not s.available), None)
    if missing is not None:
        assert "downloaded when you press Reconstruct" in handlers.scene_note(missing.name)
    assert handlers.scene_note("no-such-scene") == ""


def test_each_uploaded_file_is_described_as_soon_as_it_arrives(tiny_scene, tmp_path):
    meas, mask = tmp_path / "a measurement with a long name.npy", tmp_path / "mask.npy"
    np.save(meas, tiny_scene.meas)
    np.save(mask, tiny_scene.mask)
    text, picker = events.inspect_upload(str(meas), None, None)
    assert "`a measurement with a long name.npy`" in text  # the name in full
    assert "2 measurements of 32x32" in text and "values 0 …" in text and "axes" in text
    assert "Next: upload its mask" in text and picker.choices in ([("all", "all")], ["all"])
    text, _ = events.inspect_upload(None, str(mask), None)
    assert "8 planes (compression ratio 8) of 32x32" in text and "Next: upload the measurement" in text
    text, picker = events.inspect_upload(str(meas), str(mask), None)
    assert "compression ratio **8**" in text and "**measurement**" in text and "**mask**" in text
    (tmp_path / "junk.npy").write_bytes(b"junk")
    text, _ = events.inspect_upload(str(tmp_path / "junk.npy"), str(mask), None)
    assert text.count("junk.npy") >= 2 and "✖" in text and "Traceback" not in text


def test_an_inspected_upload_is_parsed_once(tiny_scene, tmp_path, monkeypatch):
    """The upload tab reads each file once (one child process) and Reconstruct reuses that parse."""
    from qsci.io import isolate

    paths = [str(tmp_path / f"{n}.npy") for n in ("meas", "mask", "gt")]
    for path, arr in zip(paths, (tiny_scene.meas, tiny_scene.mask, tiny_scene.gt.reshape(-1, 32, 32))):
        np.save(path, arr)
    real, parsers = isolate.read_upload, []
    monkeypatch.setattr(isolate, "read_upload", lambda *a, **k: parsers.append(k.get("parser")) or real(*a, **k))
    handlers.UPLOADS.clear()
    text, picker = events.inspect_upload(*paths)
    assert parsers == [handlers.INSPECT_PARSER]
    assert "2 measurements of 32x32" in text and "8 planes (compression ratio 8) of 32x32" in text
    assert "16 frames of 32x32" in text and "compression ratio **8**" in text and "ground truth: **yes**" in text
    scene = handlers.load_upload(*paths)
    assert parsers == [handlers.INSPECT_PARSER]  # not parsed again
    fresh = real(*paths)  # what the default parser gives on its own
    for a, b in ((scene.meas, fresh.meas), (scene.mask, fresh.mask), (scene.gt, fresh.gt)):
        np.testing.assert_array_equal(a, b)
    assert scene.info == fresh.info and scene.name == fresh.name == "meas.npy" and "files" not in scene.info
    handlers.load_upload(*paths, index="1")  # other options: parsed for them
    assert parsers == [handlers.INSPECT_PARSER, handlers.SCENE_FROM_FILES]
    handlers.UPLOADS.clear()


def test_example_uploads_are_reproducible_and_readable(tmp_path):
    from ui import examples

    made = examples.make(tmp_path)
    for name, paths in made.items():
        for p in paths:
            if p is not None:
                committed = examples.FOLDER / p.name
                assert committed.read_bytes() == p.read_bytes(), f"{committed} differs: run python -m ui.examples"
    rows = examples.listed()
    assert len(rows) == 2 and rows[0][2] is not None and rows[1][2] is None
    with_gt = handlers.load_upload(*rows[0])
    assert with_gt.gt is not None and with_gt.meas.shape == (2, 64, 64) and with_gt.cr == 8
    assert handlers.load_upload(*rows[1]).gt is None


def test_progress_keeps_moving_inside_a_long_step():
    now = [100.0]
    seen = []
    ticker = events._Ticker(lambda f, desc="": seen.append((f, desc)), interval=1.0, clock=lambda: now[0])
    ticker(0.25, desc="qsci-t-fp32: measurement 1/1")
    assert ticker.tick() is None  # nothing to add yet
    now[0] += 7.0
    assert ticker.tick() == "qsci-t-fp32: measurement 1/1 · 7 s"
    assert seen[-1] == (0.25, "qsci-t-fp32: measurement 1/1 · 7 s")  # same fraction: only the clock runs
    ticker(0.5, desc="writing gap-tv video (2/4)")
    now[0] += 0.5
    assert ticker.tick() is None  # a new step restarts the clock


def test_methods_not_run_here_are_placed_by_their_bench_seconds_and_benchmark_score():
    manifest = {
        "models": [
            {"name": "qsci-t-gap-4bit", "latency": {"seconds": 0.35}, "metrics": {"quantized_sci": {"mean": {"psnr": 30.98}}}},
            {"name": "qsci-t-4bit", "latency": {"seconds": 0.31}, "metrics": {"quantized_sci": {"mean": {"psnr": 20.67}}}},
            {"name": "no-latency", "metrics": {"quantized_sci": {"mean": {"psnr": 25.0}}}},
            {"name": "no-score", "latency": {"seconds": 0.5}, "metrics": {}},
        ],
        "gap_tv": {"latency": {"seconds": 0.04}, "quantized_sci": {"mean": {"psnr": 30.13}}},
    }
    assert handlers.benched(manifest, {"qsci-t-4bit"}) == [("qsci-t-gap-4bit", 0.35, 30.98), ("gap-tv", 0.04, 30.13)]
    assert handlers.benched({}, set()) == []
