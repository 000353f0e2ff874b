"""Issue 13, CLI and scene-list observations (each failed before the fix):
3. real-camera scenes said "not on disk" for the measurement when only real_mask.mat is missing;
5. `load-check --checkpoint FILE` (README) was refused, and our own packed checkpoints too;
6. `bench` without --backend timed fake-quant / default-layout fp32 instead of what the engine runs;
7. `complexity --model qsci-t-4bit` described a per-channel variant, not the shipped checkpoint;
8. one --json convention, JSON files 0644, headers on tabular output.
"""

from __future__ import annotations

import argparse
import json
import stat
import subprocess
import sys

import pytest

from qsci.cli import build_parser
from qsci.cli import main as cli_main
from qsci.zoo import checkpoints_dir, read_manifest


def qsci(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "qsci", *args], capture_output=True, text=True, timeout=timeout)


def _manifest(name: str) -> dict:
    return next(e for e in read_manifest()["models"] if e["name"] == name)


# ---------------------------------------------------------------- 3. real-camera scenes

def test_real_scenes_name_exactly_the_missing_file(data_dir):
    from qsci.scenes import list_scenes
    from ui import handlers

    real = [s for s in list_scenes() if s.kind == "real"]
    assert len(real) == 20
    here = [s for s in real if (data_dir / "real" / f"cr{s.name.rsplit('cr', 1)[1]}").is_dir()]
    assert here, "the data folder holds real measurements"
    for s in here:  # the measurement is on disk, only the authors' mask is not
        assert not s.available and s.missing == ("real_mask.mat",)
        assert s.status == "needs download: real_mask.mat"
    labels = dict((v, k) for k, v in handlers.scene_choices()[0])
    assert labels[here[0].name].endswith("needs download: real_mask.mat")
    note = handlers.scene_note(here[0].name)
    assert "needs download: real_mask.mat" in note and "network" in note and "not on disk" not in note
    r = qsci("scenes")
    row = next(line for line in r.stdout.splitlines() if line.startswith(here[0].name + " "))
    assert "needs download: real_mask.mat" in row


# ---------------------------------------------------------------- 5. load-check

@pytest.mark.parametrize("name", ["qsci-t-4bit", "qsci-t-fp32"])
def test_load_check_takes_checkpoint_option_and_our_files(name, capsys):
    path = checkpoints_dir() / _manifest(name)["file"]
    assert cli_main(["load-check", "--checkpoint", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["variant"] == name
    assert cli_main(["load-check", str(path)]) == 0  # positional still works


def test_load_check_without_a_file_is_one_line(tmp_path):
    r = qsci("load-check", "--checkpoint", str(tmp_path / "none.pth"))
    assert r.returncode == 2 and r.stderr.strip() == "error: none.pth: checkpoint file not found"


# ---------------------------------------------------------------- 6. bench default backend

def test_bench_defaults_to_what_the_engine_runs():
    from qsci.cli.bench import default_backend

    size = (8, 16, 16)
    assert default_backend("qsci-t-8bit", "auto", size, False) == ("int8", False)
    assert default_backend("qsci-t-fp32", "auto", size, False) == ("fp32", True)  # channels-last
    assert default_backend("qsci-t-8bit", "fakequant", size, False) == ("fakequant", False)
    r = qsci("bench", "--model", "qsci-t-8bit", "--size", "16x16x8", "--repeats", "1", "--warmup", "0",
             "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("timed backend: int8 (engine default")


# ---------------------------------------------------------------- 7. complexity

def test_complexity_describes_the_listed_checkpoint(capsys):
    assert cli_main(["complexity", "--model", "qsci-t-4bit", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["params"] == _manifest("qsci-t-4bit")["params"]  # the shipped per-tensor model
    assert got["bops"] == _manifest("qsci-t-4bit")["bops"]
    r = qsci("complexity", "--model", "qsci-t-4bit")
    assert r.returncode == 0 and "(the config stored in qsci-t-4bit.pt)" in r.stdout.splitlines()[0]


# ---------------------------------------------------------------- 8. --json, modes, headers

def test_one_json_convention_for_every_command():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices
    with_json = {name for name, p in sub.items() if any("--json" in a.option_strings for a in p._actions)}
    assert with_json == {"scenes", "models", "evaluate", "complexity", "bench", "load-check"}
    for name in with_json:
        action = next(a for a in sub[name]._actions if "--json" in a.option_strings)
        assert action.nargs == "?" and action.const == "-" and action.metavar == "FILE", name
        assert not isinstance(action, argparse._StoreTrueAction)


def test_json_file_is_written_0644_and_printed(tmp_path):
    out = tmp_path / "m.json"
    r = qsci("models", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text()) == json.loads(r.stdout)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_tables_have_headers():
    for cmd, first in (("scenes", ["name", "kind", "local", "description"]),
                       ("models", ["name", "bits", "source", "weights", "description"])):
        r = qsci(cmd)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0].split() == first
