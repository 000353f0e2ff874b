"""Start `python app.py` on a free loopback port: for the API, browser and upload tests and the load test.

Lives with the scripts (the layer above everything), so that `scripts/load_test.py` needs nothing
from `tests/`; the tests import it as `scripts.app_server`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def launched_app(log_path: Path, timeout_s: float = 300.0, before_ready=None, **extra_env: str):
    """(process, base URL) of a freshly started app; `before_ready()` runs while it starts."""
    port = free_port()
    env = dict(os.environ,
               GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False",
               QSCI_APP_SHOW_UNTRAINED="1",
               # one torch thread: on a shared 2-core box, two spinning threads are many times slower
               OMP_NUM_THREADS="1")
    env.update(extra_env)  # a caller may override the defaults above
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        if before_ready is not None:
            before_ready()
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app exited with {proc.returncode}:\n{Path(log_path).read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app did not answer within {timeout_s} s:\n{Path(log_path).read_text()[-3000:]}")
            time.sleep(0.25)
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def running_app(log_path: Path, timeout_s: float = 300.0, **extra_env: str):
    """Yield the base URL of a freshly started app; the process is killed afterwards."""
    with launched_app(log_path, timeout_s, **extra_env) as (_proc, url):
        yield url
