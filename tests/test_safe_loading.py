"""Nothing we load can run code, and nothing we download can land outside the cache.

- Checkpoints: a pickle whose `__reduce__` would create a marker file is refused by every loader
  (weights_only=True everywhere), and the marker never appears.
- .npy / .npz holding pickles are refused without unpickling.
- Downloads: only from the registry URL (or the mirror), verified by git blob id, size-capped,
  written inside the cache; names and registry paths cannot escape with `..` or symlinks.
- The app's per-request folders and Gradio's upload cache are cleaned up.
"""

from __future__ import annotations

import contextlib
import http.server
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from qsci import data
from qsci.errors import DataUnavailableError, QSCIError
from helpers_http import serve

REPO = Path(__file__).resolve().parents[1]


class Evil:
    """Unpickling this calls open(marker, "w"): the marker file proves code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def evil_files(tmp_path):
    """(marker path, {label: malicious checkpoint file}) in every layout the loaders accept."""
    marker = tmp_path / "PWNED"
    files = {
        "zip-state-dict": ({"model_state_dict": {"w": torch.zeros(2)}, "payload": Evil(marker)}, {}),
        "zip-bare": ({"w": Evil(marker)}, {}),
        "zip-packed": ({"format": "qsci-packed-v1", "config": Evil(marker), "qweights": {}, "tensors": {}}, {}),
        "legacy-format": ({"model_state_dict": Evil(marker)}, {"_use_new_zipfile_serialization": False}),
    }
    out = {}
    for label, (obj, kw) in files.items():
        path = tmp_path / f"{label}.pth"
        torch.save(obj, path, **kw)
        out[label] = path
    raw = tmp_path / "raw-pickle.pth"
    raw.write_bytes(pickle.dumps(Evil(marker)))
    out["raw-pickle"] = raw
    assert not marker.exists()
    return marker, out


def _loaders():
    from qsci import zoo
    from qsci.deploy import weights
    from training import checkpointing

    return {
        "weights.read_weights": weights.read_weights,
        "weights.open_weights": weights.open_weights,
        "weights.read_state_dict": weights.read_state_dict,
        "weights.load_model": weights.load_model,
        "weights.load_official": weights.load_official,
        "weights.load_check": weights.load_check,
        "weights.read_packed": weights.read_packed,
        "zoo.load_weights_file": zoo.load_weights_file,
        "training.load_checkpoint": checkpointing.load_checkpoint,
        "engine.reconstruct(checkpoint=)": lambda p: __import__("qsci.engine").engine.reconstruct(
            np.ones((1, 8, 8), np.float32), np.ones((2, 8, 8), np.float32), "qsci-s-4bit", checkpoint=p),
    }


def test_every_checkpoint_loader_refuses_pickled_code(evil_files):
    marker, files = evil_files
    for name, load in _loaders().items():
        for label, path in files.items():
            with pytest.raises(QSCIError):
                load(path)
            assert not marker.exists(), f"{name} executed the pickle in {label}"


def test_library_checkpoint_loaders_refuse_in_one_line(evil_files):
    _marker, files = evil_files
    for name, load in _loaders().items():
        for label, path in files.items():
            with pytest.raises(QSCIError) as err:
                load(path)
            assert "\n" not in str(err.value), (name, label, str(err.value))


def test_training_checkpoint_loader_refuses_in_one_line(evil_files):
    from training.checkpointing import load_checkpoint

    with pytest.raises(QSCIError) as err:
        load_checkpoint(evil_files[1]["zip-state-dict"])
    assert "\n" not in str(err.value) and "weights_only` set to `False" not in str(err.value)


def test_cli_load_check_refuses_pickled_code(evil_files, capsys):
    from qsci.cli import main

    marker, files = evil_files
    assert main(["load-check", str(files["zip-state-dict"])]) == 2
    assert capsys.readouterr().err.startswith("error: zip-state-dict.pth: ") and not marker.exists()


def test_no_loader_in_the_code_base_allows_pickles():
    """Static guard: every torch.load passes weights_only=True; no allow_pickle=True / pickle.load."""
    offenders = []
    for path in [*REPO.glob("qsci/**/*.py"), *REPO.glob("training/**/*.py"), *REPO.glob("ui/**/*.py"),
                 REPO / "app.py"]:
        if not path.is_file():
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"torch\.load\(", code) and "weights_only=True" not in code and "`" not in code:
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
            if re.search(r"allow_pickle\s*=\s*True|pickle\.loads?\(|joblib\.load|dill\.load", code):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, offenders


def test_numpy_pickles_are_refused_without_unpickling(tmp_path):
    from qsci.io import read_mask, read_measurement, read_scene

    marker = tmp_path / "PWNED"
    np.save(tmp_path / "evil.npy", np.array([Evil(marker)], dtype=object), allow_pickle=True)
    evil = np.array([Evil(marker)], dtype=object)
    np.savez(tmp_path / "evil.npz", meas=evil, mask=evil, orig=evil)
    for reader in (read_measurement, read_mask, read_scene):
        for name in ("evil.npy", "evil.npz"):
            with pytest.raises(QSCIError, match="pickled Python objects are never loaded"):
                reader(tmp_path / name)
    assert not marker.exists()


# ---- downloads ---------------------------------------------------------------------------------------


class _Lying(http.server.BaseHTTPRequestHandler):
    """Serves `body` for any path; `length` = the Content-Length header to send (None: omit it)."""

    body = b""
    length: int | None = None
    seen: list

    def do_GET(self):
        self.seen.append(self.path)
        self.send_response(200)
        if self.length is not None:
            self.send_header("Content-Length", str(self.length))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def lying_server(body: bytes, length: int | None):
    seen: list[str] = []
    handler = type("H", (_Lying,), {"body": body, "length": length, "seen": seen})
    with serve(handler) as url:
        yield url, seen


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QSCI_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("QSCI_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QSCI_OFFLINE", raising=False)
    return tmp_path / "cache"


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_names_cannot_escape_the_registry(fresh_cache):
    for name in ("../x", "../../etc/passwd", "/etc/passwd", "kobe/../../x", ""):
        with pytest.raises(QSCIError, match="unknown data file"):
            data.get(name)
        with pytest.raises(QSCIError):
            data.fetch(name)
    assert _files_under(fresh_cache) == []


@pytest.mark.parametrize("relpath", ["../escape.mat", "mask/../../escape.mat", "/tmp/escape.mat", ""])
def test_registry_paths_with_dotdot_cannot_write_outside_the_cache(fresh_cache, monkeypatch, relpath):
    entry = data.DataFile("evil", "mask", "x/y", "evil.mat", relpath, "0" * 40, 4)
    monkeypatch.setitem(data.REGISTRY, "evil", entry)
    with lying_server(b"evil", 4) as (url, seen):
        monkeypatch.setenv("QSCI_MIRROR", url)
        with pytest.raises(QSCIError, match="is not a plain relative path"):
            data.fetch("evil")
    assert seen == [] and not (fresh_cache.parent / "escape.mat").exists()


def test_symlinked_cache_folder_cannot_redirect_a_download(fresh_cache, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    fresh_cache.mkdir()
    (fresh_cache / "mask").symlink_to(outside, target_is_directory=True)
    with lying_server(b"x", 1) as (url, seen):
        monkeypatch.setenv("QSCI_MIRROR", url)
        with pytest.raises(QSCIError, match="leaves"):
            data.fetch("quantized_sci_mask")
    assert seen == [] and list(outside.iterdir()) == []


def test_only_http_addresses_are_fetched(fresh_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("QSCI_MIRROR", f"file://{tmp_path}")
    with pytest.raises(DataUnavailableError, match="refusing to download from non-HTTP address"):
        data.fetch("quantized_sci_mask")


def test_download_goes_to_the_registry_path_and_is_verified(fresh_cache, monkeypatch):
    entry = data.get("quantized_sci_mask")
    with lying_server(b"\0" * entry.size, entry.size) as (url, seen):  # right size, wrong content
        monkeypatch.setenv("QSCI_MIRROR", url)
        with pytest.raises(DataUnavailableError, match="corrupted"):
            data.fetch("quantized_sci_mask")
    assert seen == ["/" + entry.relpath] and _files_under(fresh_cache) == []


@pytest.mark.parametrize("declared", [None, 10**12])
def test_downloads_are_size_capped_even_when_the_server_lies(fresh_cache, monkeypatch, declared):
    """No Content-Length (or a huge one): the stream is cut at the registry size; nothing is kept."""
    entry = data.get("quantized_sci_mask")
    with lying_server(b"\0" * (entry.size + 4096), declared) as (url, _seen):
        monkeypatch.setenv("QSCI_MIRROR", url)
        with pytest.raises(DataUnavailableError, match=r"more than the|exceeds"):
            data.fetch("quantized_sci_mask")
    assert _files_under(fresh_cache) == []


def test_entries_of_unknown_size_use_the_global_cap(fresh_cache, monkeypatch):
    assert data.get("real_mask").size is None
    monkeypatch.setattr(data, "MAX_DOWNLOAD_BYTES", 1000)
    with lying_server(b"\0" * 5000, None) as (url, _seen):
        monkeypatch.setenv("QSCI_MIRROR", url)
        with pytest.raises(DataUnavailableError, match="exceeds 1000 bytes"):
            data.fetch("real_mask")
    assert _files_under(fresh_cache) == []


# ---- the app's temporary files -----------------------------------------------------------------------


def test_app_work_folders_expire_and_gradio_cache_is_cleaned(tmp_path, monkeypatch):
    import os
    import time

    from ui import handlers
    monkeypatch.setattr(handlers, "_WORK_ROOT", tmp_path / "qsci-app")
    old = handlers.new_workdir()
    (old / "recon.npz").write_bytes(b"x")
    stale = time.time() - handlers._WORK_TTL_S - 60
    os.utime(old, (stale, stale))
    fresh = handlers.new_workdir()
    assert not old.exists() and fresh.is_dir() and fresh.parent == tmp_path / "qsci-app"

    import app

    demo = app.build_demo()
    frequency, age = demo.delete_cache  # Gradio removes uploads and outputs older than `age`
    assert 0 < frequency <= 3600 and 0 < age <= 24 * 3600
