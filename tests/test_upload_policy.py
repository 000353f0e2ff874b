"""Issue 13: uploads that just work (value scale, warnings, output files, a crashing parser).

Each test reproduces one observation of the issue; they failed before the fix:
- the benchmark `.mat` uploaded as-is (meas on the 0..255 scale) gave all-white frames and
  PSNR -48.6 dB, and its own `orig` (8 frames for 5 measurements) was refused;
- an all-zero measurement was reconstructed without a word;
- `reconstruct --out x.png` failed after computing, unknown extensions too; outputs were 0600;
- (new) a parser crash in the app's process would have taken the app down.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import scipy.io as sio

from qsci.errors import QSCIError


@pytest.fixture
def drop8(data_dir):
    return str(data_dir / "simulation" / "drop8_cacti.mat")


def qsci(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "qsci", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture(scope="module")
def evaluate_drop8_own_mask(data_dir):
    """`python -m qsci evaluate --model gap-tv --scenes drop8 --mask <the file>`: the file's own mask,
    which is what the file's stored `meas` was coded with (the default protocol uses the Q-SCI mask)."""
    from qsci.evaluate import evaluate

    return evaluate("gap-tv", ["drop8"], mask=str(data_dir / "simulation" / "drop8_cacti.mat"))["scenes"]["drop8"]


# ---------------------------------------------------------------- value scale (observation 1)

def test_benchmark_file_as_upload_is_rescaled_and_scores_like_evaluate(drop8, evaluate_drop8_own_mask):
    from ui import handlers

    scene = handlers.load_upload(drop8, drop8, drop8)  # the app's path: child process, same policy
    assert scene.meas.shape == (1, 256, 256) and scene.gt.shape == (1, 8, 256, 256)
    assert 0 < scene.meas.max() <= 8.0  # a sum of 8 frames on 0..1
    notices = " ".join(scene.info["notices"])
    assert "divided by 255" in notices and "covers 1 of the 5 measurements" in notices
    assert "Note:" in handlers.describe_scene(scene)
    run = handlers.reconstruct_all(scene, ["gap-tv"])
    got = run.results["gap-tv"].psnr_mean
    assert abs(got - evaluate_drop8_own_mask["psnr"]) < 0.05, (got, evaluate_drop8_own_mask)


def test_cli_benchmark_file_as_is(drop8, tmp_path, evaluate_drop8_own_mask):
    out = tmp_path / "r.npz"
    r = qsci("reconstruct", "--meas", drop8, "--mask", drop8, "--gt", drop8, "--model", "gap-tv", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "divided by 255" in r.stderr
    psnr = float(r.stdout.split("PSNR ")[1].split(" dB")[0])
    assert abs(psnr - evaluate_drop8_own_mask["psnr"]) < 0.01  # printed with 2 decimals
    recon = np.load(out, allow_pickle=False)["recon"]
    assert recon.shape == (1, 8, 256, 256) and float(recon.max()) < 1.5  # was 11..254 before


def test_one_measurement_of_a_file_can_be_picked(drop8):
    from qsci.scenes import scene_from_files

    scene = scene_from_files(drop8, drop8, measurement=3)
    assert scene.meas.shape == (1, 256, 256) and scene.info["measurements_in_file"] == 5
    with pytest.raises(QSCIError, match="need 32 to cover measurement 3"):
        scene_from_files(drop8, drop8, drop8, measurement=3)


def test_scale_policy_rules():
    from qsci.io.inspect import scale_measurement

    mask = np.ones((8, 4, 4), np.float32) * 0.5  # per-pixel sum 4
    frames_scale = np.full((1, 4, 4), 3.0, np.float32)
    assert scale_measurement(frames_scale, mask)[1] == []
    y, notes = scale_measurement(frames_scale * 255, mask)
    np.testing.assert_allclose(y, frames_scale, rtol=1e-6)
    assert "divided by 255" in notes[0]
    with pytest.raises(QSCIError, match="real-camera scaling"):  # all <= 255: camera frame or dark sum
        scale_measurement(np.full((1, 4, 4), 200.0, np.float32), mask, where="cam.mat")
    with pytest.raises(QSCIError, match="cam.mat: .*more than frames on the 0..255 scale"):
        scale_measurement(np.full((1, 4, 4), 60000.0, np.float32), mask, where="cam.mat")
    y, _ = scale_measurement(np.full((1, 4, 4), 200.0, np.float32), mask, "real")
    np.testing.assert_allclose(y, 200 / 255 * 8 / 2, rtol=1e-6)
    assert scale_measurement(frames_scale * 255, mask, "none")[0].max() == pytest.approx(765)


def test_engine_refuses_a_measurement_on_the_8bit_scale():
    from qsci.engine import reconstruct

    mask = np.ones((2, 8, 8), np.float32)
    with pytest.raises(QSCIError, match="0..1 scale"):
        reconstruct(np.full((1, 8, 8), 400.0, np.float32), mask, "gap-tv")
    with pytest.raises(QSCIError, match="NaN"):
        reconstruct(np.full((1, 8, 8), np.nan, np.float32), mask, "gap-tv")


# ---------------------------------------------------------------- warnings (observation 2)

def test_all_zero_measurement_under_an_unknown_name_warns_on_stderr(tmp_path):
    sio.savemat(tmp_path / "z.mat", {"whatever": np.zeros((32, 32))})
    np.save(tmp_path / "mask.npy", (np.random.default_rng(0).random((8, 32, 32)) < 0.5).astype(np.float32))
    r = qsci("reconstruct", "--meas", str(tmp_path / "z.mat"), "--mask", str(tmp_path / "mask.npy"),
             "--out", str(tmp_path / "o.npz"))
    assert r.returncode == 0, r.stderr  # the result is still produced
    assert "warning: the measurement is all zeros" in r.stderr


def test_input_warnings_cover_constant_saturated_empty_planes_and_density():
    from qsci.io.inspect import input_warnings

    rng = np.random.default_rng(1)
    mask = (rng.random((4, 16, 16)) < 0.5).astype(np.float32)
    ok = rng.random((2, 16, 16)).astype(np.float32)
    assert input_warnings(ok, mask) == []
    const = np.full((1, 16, 16), 0.7, np.float32)
    assert "constant (0.7 everywhere)" in input_warnings(const, mask)[0]
    sat = ok[:1].copy()
    sat[0, :8] = sat.max() + 1  # half the pixels at the top value
    assert "50% of the pixels sit at the maximum" in input_warnings(sat, mask)[0]
    holes = mask.copy()
    holes[2] = 0
    assert any("mask plane 2 is empty" in w for w in input_warnings(ok, holes))
    sparse = (rng.random((4, 16, 16)) < 0.05).astype(np.float32)
    assert any("mask density 0.0" in w and "0.5" in w for w in input_warnings(ok, sparse))


def test_app_shows_warnings_beside_the_result(tmp_path):
    from ui import handlers

    np.save(tmp_path / "m.npy", np.zeros((1, 16, 16), np.float32))
    np.save(tmp_path / "k.npy", (np.random.default_rng(0).random((4, 16, 16)) < 0.5).astype(np.float32))
    scene = handlers.load_upload(str(tmp_path / "m.npy"), str(tmp_path / "k.npy"))
    assert "Warning:** the measurement is all zeros" in handlers.describe_scene(scene)


# ---------------------------------------------------------------- output files (observations 4, 8)

@pytest.mark.parametrize("ext", [".png", ".npy", ".tif", ".mat"])
def test_every_documented_out_extension_works(tmp_path, ext):
    rng = np.random.default_rng(2)
    mask = (rng.random((4, 16, 16)) < 0.5).astype(np.float32)
    np.save(tmp_path / "k.npy", mask)
    np.save(tmp_path / "m.npy", (mask * rng.random((4, 16, 16))).sum(0, keepdims=True).astype(np.float32))
    out = tmp_path / f"out{ext}"
    r = qsci("reconstruct", "--meas", str(tmp_path / "m.npy"), "--mask", str(tmp_path / "k.npy"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    written = out.with_suffix("") / "frame_0000.png" if ext == ".png" else out
    assert written.is_file()
    assert stat.S_IMODE(written.stat().st_mode) == 0o644


def test_unknown_out_extension_is_refused_before_reading_anything(tmp_path):
    r = qsci("reconstruct", "--meas", str(tmp_path / "missing.mat"), "--mask", "quantized_sci",
             "--out", str(tmp_path / "x.xyz"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "cannot write '.xyz'" in r.stderr and ".png" in r.stderr and "missing.mat" not in r.stderr


def test_writers_make_0644_files(tmp_path):
    from qsci.io import save_frames, write_video

    frames = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
    for path in (save_frames(tmp_path / "a.npz", frames), write_video(tmp_path / "a.mp4", frames)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


# ---------------------------------------------------------------- a parser crash (new requirement)

def test_a_crashing_parser_gives_one_line_and_the_app_keeps_serving(drop8, monkeypatch):
    from ui import handlers

    monkeypatch.setattr(handlers, "UPLOAD_PARSER", "upload_crash_parser:abort_after_reading")
    with pytest.raises(QSCIError) as err:
        handlers.load_upload(drop8, drop8)
    msg = str(err.value)
    assert "\n" not in msg and "drop8_cacti.mat" in msg and "crashed (SIGABRT)" in msg
    assert "reading the measurement" in msg  # the mask was read fine; the measurement crashed
    monkeypatch.setattr(handlers, "UPLOAD_PARSER", "qsci.scenes:scene_from_files")
    assert handlers.load_upload(drop8, drop8).meas.shape == (5, 256, 256)  # this process is still here


def test_a_hanging_or_hungry_parser_is_stopped(drop8, monkeypatch):
    from ui import handlers

    monkeypatch.setenv("QSCI_UPLOAD_TIMEOUT_S", "2")
    monkeypatch.setattr(handlers, "UPLOAD_PARSER", "upload_crash_parser:hang")
    with pytest.raises(QSCIError, match="took longer than 2 s"):
        handlers.load_upload(drop8, drop8)
    monkeypatch.setenv("QSCI_UPLOAD_TIMEOUT_S", "60")
    monkeypatch.setenv("QSCI_UPLOAD_MEMORY_MB", "1024")
    monkeypatch.setattr(handlers, "UPLOAD_PARSER", "upload_crash_parser:hog")
    with pytest.raises(QSCIError, match="more than the 1024 MB allowed"):
        handlers.load_upload(drop8, drop8)


def test_isolated_parsers_may_return_plain_json(drop8):
    from qsci.io.isolate import read_upload

    assert read_upload(drop8, parser="upload_crash_parser:describe") == {
        "shape": [5, 256, 256], "axes": "H,W,T -> T,H,W (MATLAB v5)"}


def test_the_per_file_upload_card_reads_in_the_child_process(drop8, monkeypatch):
    from ui import filecard

    line = filecard.describe_file("measurement", drop8)
    assert line.startswith("**measurement** `drop8_cacti.mat`: 5 measurements of 256x256")
    seen = []
    import qsci.io.isolate as isolate

    real = isolate.read_upload
    monkeypatch.setattr(isolate, "read_upload", lambda *a, **k: seen.append(k["parser"]) or real(*a, **k))
    assert filecard.describe_file("mask", drop8).startswith("**mask** `drop8_cacti.mat`: 8 planes")
    assert seen == ["ui.filecard:read_and_describe"]


def test_an_uploaded_video_for_simulation_is_read_in_the_child_process(tmp_path, monkeypatch):
    import qsci.io.isolate as isolate
    from qsci.io import write_video
    from ui import handlers

    frames = np.random.default_rng(0).random((8, 16, 16)).astype(np.float32)
    video = write_video(tmp_path / "clip.mp4", frames)
    seen = []
    real = isolate.read_upload
    monkeypatch.setattr(isolate, "read_upload", lambda *a, **k: seen.append(k["parser"]) or real(*a, **k))
    scene = handlers.simulate_input(str(video), None, "random", 0, 4, 0.0)
    assert seen == ["qsci.io.readers:read_scene"]
    assert scene.gt.shape[1:] == (4, 16, 16) and scene.meas.shape[1:] == (16, 16)


def test_isolated_upload_reading_keeps_every_bad_file_message(tmp_path):
    """The malformed-file corpus through `handlers.load_upload` (child process): the same one line
    as the CLI for each case (`tests/test_bad_inputs.py` checks the CLI's own lines)."""
    import importlib.util
    from pathlib import Path

    from qsci.cli import main as cli_main
    from ui import handlers

    repo = Path(__file__).resolve().parents[1]
    bad = repo / "tests" / "data" / "bad"
    spec = importlib.util.spec_from_file_location("make_bad_inputs", repo / "scripts" / "make_bad_inputs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    cases = gen.load_cases(bad)
    assert len(cases) >= 30
    import contextlib
    import io as _io

    for case in cases:
        gt = str(bad / case["gt"]) if case["gt"] else None
        err = _io.StringIO()
        argv = ["reconstruct", "--meas", str(bad / case["meas"]), "--mask", str(bad / case["mask"]),
                "--model", "gap-tv", "--out", str(tmp_path / "x.npz")] + (["--gt", gt] if gt else [])
        with contextlib.redirect_stderr(err):
            assert cli_main(argv) == 2, case["id"]
        cli_line = err.getvalue().strip().splitlines()[-1].removeprefix("error: ")
        with pytest.raises(QSCIError) as exc:
            handlers.load_upload(str(bad / case["meas"]), str(bad / case["mask"]), gt)
        assert str(exc.value) == cli_line, case["id"]
        assert case["expect"] in str(exc.value), case["id"]


def test_traffic_file_with_all_its_measurements_scores_like_evaluate(data_dir):
    """traffic_cacti.mat: float64 meas (6 measurements), orig 48 frames covering all of them."""
    from qsci.engine import reconstruct
    from qsci.evaluate import evaluate
    from qsci.scenes import scene_from_files

    path = str(data_dir / "simulation" / "traffic_cacti.mat")
    scene = scene_from_files(path, path, path)
    assert scene.meas.shape[0] == 6 and scene.gt.shape[0] == 6
    assert len(scene.info["notices"]) == 1 and "divided by 255" in scene.info["notices"][0]
    got = reconstruct(scene.meas, scene.mask, "gap-tv", gt=scene.gt).psnr_mean
    want = evaluate("gap-tv", ["traffic"], mask=path)["scenes"]["traffic"]["psnr"]
    assert abs(got - want) < 0.05, (got, want)
