"""Every malformed file in `tests/data/bad/` fails fast with one line that names the problem.

The corpus and its table (`cases.json`) come from `scripts/make_bad_inputs.py`. Each case goes
through the CLI in-process (all cases, 10 s alarm each), the real CLI in subprocesses (a few), and
the app's upload handlers (`ui.events.inspect_upload` / `api_reconstruct_upload`), which must raise
`gr.Error` with exactly the CLI's message.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

from deadlines import deadline

import pytest

REPO = Path(__file__).resolve().parents[1]
BAD = REPO / "tests" / "data" / "bad"
LIMIT_S = 10


def _generator():
    spec = importlib.util.spec_from_file_location("make_bad_inputs", REPO / "scripts" / "make_bad_inputs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CASES = _generator().load_cases(BAD)
IDS = [c["id"] for c in CASES]


def _argv(case: dict, out: Path) -> list[str]:
    argv = ["reconstruct", "--meas", str(BAD / case["meas"]), "--mask", str(BAD / case["mask"]),
            "--model", "gap-tv", "--out", str(out)]
    return argv + (["--gt", str(BAD / case["gt"])] if case["gt"] else [])


def _deadline(seconds: int):
    """Fail (instead of hanging the suite) when an in-process call takes too long."""
    return deadline(seconds, "in-process call")


def _cli_message(case: dict, tmp_path: Path, capsys) -> str:
    from qsci.cli import main

    out = tmp_path / "out.npz"
    start = time.perf_counter()
    with _deadline(LIMIT_S):
        rc = main(_argv(case, out))
    elapsed = time.perf_counter() - start
    captured = capsys.readouterr()
    assert rc == 2, f"{case['id']}: exit {rc}, stderr {captured.err!r}"
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err and not out.exists()
    assert elapsed < LIMIT_S
    return lines[0][len("error: "):]


# ---- the corpus itself ----------------------------------------------------------------------------


def test_corpus_is_small_covers_every_format_and_matches_the_generator(tmp_path):
    files = [p for p in BAD.iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 2 * 1024 * 1024
    assert len(CASES) >= 30 and len(set(IDS)) == len(IDS)
    used = {c[k] for c in CASES for k in ("meas", "mask", "gt") if c[k]}
    assert all((BAD / name).is_file() for name in used)
    assert {Path(n).suffix for n in used} >= {".mat", ".npy", ".npz", ".png", ".tif", ".mp4"}
    assert {c["id"] for c in CASES} >= {"bomb-npy", "bomb-png", "bomb-h5", "npy-object", "gt-one-frame",
                                         "cr-over-limit", "zero-mask", "size-mismatch"}
    _generator().build(tmp_path / "again")  # deterministic: regenerating gives the committed bytes
    digest = lambda folder: {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in folder.iterdir()}  # noqa: E731
    assert digest(tmp_path / "again") == digest(BAD)


def test_good_files_of_the_corpus_do_reconstruct(tmp_path, capsys):
    from qsci.cli import main

    out = tmp_path / "ok.npz"
    rc = main(["reconstruct", "--meas", str(BAD / "good_meas.npy"), "--mask", str(BAD / "good_mask.npy"),
               "--gt", str(BAD / "good_gt.npy"), "--model", "gap-tv", "--out", str(out)])
    assert rc == 0 and out.is_file() and "PSNR" in capsys.readouterr().out


# ---- CLI ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cli_fails_with_one_line_naming_the_problem(case, tmp_path, capsys):
    message = _cli_message(case, tmp_path, capsys)
    assert case["expect"] in message, message
    bad = [case[k] for k in ("meas", "mask", "gt") if case[k] and not case[k].startswith("good_")]
    assert len(bad) == 1 and bad[0] in message, message  # the message names the file at fault


SUBPROCESS_CASES = ["bomb-png", "trunc-mp4-gt", "npy-object", "gt-one-frame", "trunc-tif", "bomb-h5"]


def test_real_cli_subprocesses_exit_2_with_one_line_within_the_limit(tmp_path):
    import resource

    by_id = {c["id"]: c for c in CASES}
    for case_id in SUBPROCESS_CASES:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "qsci", *_argv(by_id[case_id], tmp_path / f"{case_id}.npz")],
                           capture_output=True, text=True, timeout=LIMIT_S * 4)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2, (case_id, r.stderr)
        assert len(lines) == 1 and by_id[case_id]["expect"] in lines[0], (case_id, r.stderr)
        assert cpu < LIMIT_S, f"{case_id} used {cpu:.1f} s of CPU ({wall:.1f} s wall)"


# ---- the app's upload path ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_upload_tab_shows_the_cli_message(case, tmp_path, capsys):
    """The Upload tab reports a bad pair in its own info line (no toast), in the CLI's words."""
    from ui import events

    expected = _cli_message(case, tmp_path, capsys)
    gt = str(BAD / case["gt"]) if case["gt"] else None
    with _deadline(LIMIT_S):
        info, _picker = events.inspect_upload(str(BAD / case["meas"]), str(BAD / case["mask"]), gt)
    assert f"**✖ Cannot use these files together:** {expected}" in info, info


@pytest.mark.parametrize("case_id", ["bomb-npz", "mat73-char", "gt-one-frame", "size-mismatch"])
def test_upload_api_handler_raises_gr_error_before_reconstructing(case_id, tmp_path, capsys):
    import gradio as gr
    from ui import events

    case = next(c for c in CASES if c["id"] == case_id)
    expected = _cli_message(case, tmp_path, capsys)
    gt = str(BAD / case["gt"]) if case["gt"] else None
    with _deadline(LIMIT_S), pytest.raises(gr.Error) as err:
        events.api_reconstruct_upload(str(BAD / case["meas"]), str(BAD / case["mask"]), gt, ["gap-tv"])
    assert err.value.message == expected
