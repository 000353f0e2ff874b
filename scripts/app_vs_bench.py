"""Does the app report what `qsci bench` measures? Per-measurement seconds of one model, both ways.

    python -m scripts.app_vs_bench --model qsci-t-gap-4bit [--scene drop8] [--threads 2]

Starts `python app.py` on a free loopback port (offline, as a visitor would run it), asks its
`/reconstruct_scene` endpoint for one method on a benchmark scene, divides the method's seconds
by the number of measurements, then runs `python -m qsci bench` for the same model in a fresh
process at the same size and thread count. Prints both, their ratio and `uptime` before and
after: the two only compare at the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from gradio_client import Client

from qsci.data import EVAL_SCENES
from qsci.scenes import load_scene

REPO = Path(__file__).resolve().parents[1]


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_seconds(model: str, scenes: list[str], threads: int, timeout_s: float = 600.0) -> list[float]:
    """Seconds per measurement the app reports for `model` on each scene, in order, in one server."""
    port = _free_port()
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
               GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS=str(threads), QSCI_OFFLINE="1")
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(f"the app did not start:\n{log.read()[-2000:]}")
                try:
                    with urllib.request.urlopen(url, timeout=2):
                        break
                except OSError:
                    time.sleep(0.5)
            client = Client(url, verbose=False)
            out = []
            for scene in scenes:
                result = client.predict(scene, [model], api_name="/reconstruct_scene")
                entry = (json.loads(result) if isinstance(result, str) else result)[model]
                if entry.get("error"):
                    raise SystemExit(f"the app could not run {model}: {entry['error']}")
                out.append(float(entry["seconds"]) / load_scene(scene).meas.shape[0])
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return out


def bench_seconds(model: str, threads: int, size: str) -> float:
    out = subprocess.run([sys.executable, "-m", "qsci", "bench", "--model", model, "--threads", str(threads),
                          "--size", size, "--json"], cwd=REPO, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout)["median_s"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.app_vs_bench", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--scenes", default=",".join(EVAL_SCENES),
                   help="benchmark scenes run in turn in one server (the first call also pays first-use costs)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    print("before:", _uptime(), flush=True)
    scenes = [s for s in args.scenes.split(",") if s]
    app = app_seconds(args.model, scenes, args.threads)
    bench = bench_seconds(args.model, args.threads, "256x256x8")
    print(json.dumps({"model": args.model, "threads": args.threads,
                      "app_s_per_measurement": dict(zip(scenes, (round(a, 3) for a in app))),
                      "bench_median_s": round(bench, 3),
                      "app_over_bench": [round(a / bench, 3) for a in app]}))
    print("after:", _uptime())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
