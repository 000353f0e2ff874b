"""Issue 13: a parser crash cannot take the app down (through the running app's HTTP API).

The app is started with `QSCI_UPLOAD_PARSER` pointing at a stand-in that calls `os.abort()` in the
upload child process (tests/upload_crash_parser.py). The upload must fail with one line naming
the file, and the same app must then still answer another request.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.app_server import launched_app

TESTS = Path(__file__).resolve().parent


def test_upload_parser_crash_gives_one_line_and_the_app_keeps_serving(tmp_path, data_dir):
    from gradio_client import Client, handle_file

    from qsci.synthetic import list_embedded_scenes

    drop8 = str(data_dir / "simulation" / "drop8_cacti.mat")
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    with launched_app(tmp_path / "app.log", timeout_s=300, PYTHONPATH=path,
                      QSCI_UPLOAD_PARSER="upload_crash_parser:abort_after_reading") as (proc, url):
        client = Client(url, verbose=False)
        with pytest.raises(Exception) as err:
            client.predict(handle_file(drop8), handle_file(drop8), None, ["gap-tv"], api_name="/reconstruct_upload")
        message = str(err.value)
        assert "drop8_cacti.mat: the parser crashed (SIGABRT) while reading the measurement" in message
        assert "\n" not in message.strip()
        assert proc.poll() is None  # the server process is alive
        scene = list_embedded_scenes()[0]
        scores = client.predict(scene, ["gap-tv"], api_name="/reconstruct_scene")
        assert scores["gap-tv"]["psnr"] > 10  # another request still computes
