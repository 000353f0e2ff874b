"""The launched app under load, on loopback only: 8 concurrent sessions, memory peak and growth.

A small version of `scripts/load_test.py` (which holds the helpers; the full 50-request run and its
numbers are in docs/reliability.md). GAP-TV keeps it cheap; the whole file stays under ~4 minutes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import gradio_client  # noqa: F401,E402 (requirements-dev.txt: missing means broken, not skipped)
import psutil  # noqa: F401,E402

REPO = Path(__file__).resolve().parents[1]
SESSIONS = 8
SEQUENTIAL = 20
PEAK_LIMIT_MB = 4096
GROWTH_LIMIT_MB = 200


def _script():
    spec = importlib.util.spec_from_file_location("load_test", REPO / "scripts" / "load_test.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


LT = _script()
JOBS = [(LT.SCENES[i], "gap-tv") for i in range(SESSIONS)]  # 8 different scenes


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(url, RSS sampler, expected PSNRs computed here while the app starts)."""
    expected: dict = {}
    log = tmp_path_factory.mktemp("load") / "app.log"
    with LT.launched_app(log, before_ready=lambda: expected.update(LT.expected_psnr(JOBS))) as (proc, url):
        sampler = LT.RssSampler(proc.pid)
        sampler.start()
        yield url, sampler, expected
        sampler.stop()
        print(f"\napp peak RSS (with children): {sampler.peak / LT.MB:.0f} MB")


def test_concurrent_sessions_each_get_their_own_correct_result(app):
    url, sampler, expected = app
    values = sorted(expected.values())
    assert all(b - a > 0.01 for a, b in zip(values, values[1:])), values  # a swap would be visible
    results = LT.concurrent_sessions(url, JOBS, timeout=300)
    assert len(results) == SESSIONS
    for r in results:
        assert set(r["all"]) == {r["method"]}, r
        assert not r["answer"].get("error"), r
        assert r["answer"]["psnr"] == pytest.approx(expected[(r["scene"], r["method"])], abs=1e-3), r
    assert sampler.peak / LT.MB < PEAK_LIMIT_MB


def test_memory_stays_flat_over_sequential_requests(app):
    url, sampler, _expected = app
    seq = LT.sequential_requests(url, SEQUENTIAL, sampler)
    print(f"\n{SEQUENTIAL} sequential requests: RSS {seq['rss_first_mb']:.0f} -> {seq['rss_last_mb']:.0f} MB "
          f"(growth {seq['growth_mb']:.1f} MB), {seq['seconds_mean']:.2f} s each")
    assert seq["growth_mb"] < GROWTH_LIMIT_MB
    assert sampler.peak / LT.MB < PEAK_LIMIT_MB


@pytest.mark.parametrize("case_id", ["bomb-png", "mat5-bad-type"])
def test_bad_upload_through_the_client_shows_the_one_line_message(app, case_id):
    from gradio_client import Client, handle_file

    from qsci.errors import QSCIError
    from qsci.scenes import scene_from_files

    bad = REPO / "tests" / "data" / "bad"
    case = next(c for c in LT_CASES() if c["id"] == case_id)
    with pytest.raises(QSCIError) as direct:
        scene_from_files(bad / case["meas"], bad / case["mask"])
    url, _sampler, _expected = app
    client = Client(url, verbose=False)
    with pytest.raises(Exception) as err:
        client.predict(handle_file(str(bad / case["meas"])), handle_file(str(bad / case["mask"])), None,
                       ["gap-tv"], api_name="/reconstruct_upload")
    text = str(err.value)
    # Gradio stores uploads under their own names, so compare the problem after the "file: " prefix
    assert str(direct.value).split(": ", 1)[1] in text and "Traceback" not in text
    assert client.predict(LT.SCENES[0], ["gap-tv"], api_name="/reconstruct_scene")["gap-tv"]["psnr"]  # still up


def LT_CASES():  # noqa: N802 - the corpus table
    import json

    return json.loads((REPO / "tests" / "data" / "bad" / "cases.json").read_text())["cases"]


def test_queue_is_bounded_so_overload_is_refused_not_buffered():
    import app as app_module

    demo = app_module.build_demo()
    assert 0 < demo._queue.max_size <= 64  # a full queue answers "queue is full" instead of growing
    assert demo._queue.default_concurrency_limit == 1  # one CPU-bound reconstruction at a time


def test_stop_ends_a_running_reconstruction_at_its_next_step():
    """The Stop button's flag (per session) is checked at every progress step: later methods never start."""
    import threading
    import time
    from types import SimpleNamespace

    from ui import events

    request = SimpleNamespace(session_hash="load-test-stop")
    seen: list[str] = []
    stop_at = threading.Event()

    def progress(fraction, desc=""):
        seen.append(desc)
        if "gap-tv" in desc and "iteration" in desc and not stop_at.is_set():
            stop_at.set()
            events._stop_flag(request).set()  # what the Stop button's handler does

    start = time.perf_counter()
    updates = list(events.run_simulate(None, LT.SCENES[4], "random", 0, 8, 0.0, 64,
                                       ["gap-tv", "qsci-t-fp32", "qsci-t-8bit"], request, progress=progress))
    assert "Stopped" in str(updates[-1][1]), updates[-1][1]  # the status line; results and inputs stay
    assert stop_at.is_set() and not any("qsci-t" in s for s in seen), seen
    assert time.perf_counter() - start < 60
