"""The CLI as a user runs it: subprocesses, exit codes, one-line errors, JSON shapes."""

import json
import subprocess
import sys

import numpy as np
import pytest

from qsci.cli import COMMAND_MODULES, build_parser


def qsci(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "qsci", *args], capture_output=True, text=True, timeout=timeout)


def test_every_command_has_help():
    parser = build_parser()
    names = set(parser._subparsers._group_actions[0].choices)
    assert {"scenes", "models", "fetch", "evaluate", "reconstruct"} <= names
    assert len(names) == len(COMMAND_MODULES)
    r = qsci("reconstruct", "--help")
    assert r.returncode == 0 and "--meas" in r.stdout


def test_scenes_and_models_json():
    r = qsci("scenes", "--json")
    assert r.returncode == 0, r.stderr
    scenes = {s["name"]: s for s in json.loads(r.stdout)}
    assert scenes["drop8"]["available"] is True and scenes["drop8"]["kind"] == "benchmark"
    r = qsci("models", "--json")
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)
    assert {"name", "bits", "preset", "available", "source"} <= set(items[0])
    assert {i["source"] for i in items} >= {"classical", "official"}


def test_evaluate_gap_tv_json(tmp_path):
    out = tmp_path / "r.json"
    r = qsci("evaluate", "--model", "gap-tv", "--scenes", "drop8", "--json", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["model"] == "gap-tv" and set(res["scenes"]) == {"drop8"}
    s = res["scenes"]["drop8"]
    assert s["psnr"] > 30 and 0 < s["ssim"] <= 1 and s["seconds_per_measurement"] > 0
    assert res["mean"]["psnr"] == pytest.approx(s["psnr"], abs=1e-3)


def test_reconstruct_writes_npz(tmp_path, data_dir):
    meas = tmp_path / "meas.npy"
    rng = np.random.default_rng(0)
    mask = (rng.random((8, 64, 64)) > 0.5).astype(np.float32)
    np.save(tmp_path / "mask.npy", mask)
    np.save(meas, (mask * rng.random((8, 64, 64))).sum(0)[None].astype(np.float32))
    out = tmp_path / "rec.npz"
    r = qsci("reconstruct", "--meas", str(meas), "--mask", str(tmp_path / "mask.npy"), "--model", "gap-tv", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.is_file()


@pytest.mark.parametrize("args, needle", [
    (["evaluate", "--model", "nope", "--scenes", "drop8"], "unknown method 'nope'"),
    (["evaluate", "--model", "gap-tv", "--scenes", "nowhere"], "unknown scene 'nowhere'; choose from kobe"),
    (["fetch"], "name at least one file"),
])
def test_bad_input_is_one_line(args, needle):
    r = qsci(*args)
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
