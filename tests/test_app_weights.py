"""The authors' checkpoints on first use (ui.weights): download over loopback HTTP with progress,
git-blob-id verification, one short line offline or when the file is corrupted."""

from __future__ import annotations

import dataclasses

import pytest
from helpers_http import serve_folder

from qsci import data, zoo
from qsci.errors import QSCIError
from ui import weights

NAME = "official-s-2bit"


@pytest.fixture
def fake_checkpoint(tmp_path, monkeypatch):
    """The registry entry of NAME pointed at a small local file served from a loopback mirror."""
    entry = data.get(zoo.OFFICIAL[NAME][0])
    served = tmp_path / "mirror"
    target = served / entry.relpath
    target.parent.mkdir(parents=True)
    target.write_bytes(bytes(range(256)) * 4096)  # 1 MiB: several progress reports
    fake = dataclasses.replace(entry, blob_id=data.blob_id(target), size=target.stat().st_size)
    monkeypatch.setitem(data.REGISTRY, entry.name, fake)
    monkeypatch.setenv("QSCI_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QSCI_DATA_DIR", raising=False)
    monkeypatch.delenv("QSCI_OFFLINE", raising=False)
    return served, target, fake


def test_first_use_downloads_with_progress_and_verifies(fake_checkpoint, monkeypatch):
    served, target, fake = fake_checkpoint
    with serve_folder(served) as (url, seen):
        monkeypatch.setenv("QSCI_MIRROR", url)
        assert weights.needs_download(NAME)
        reports = []
        assert weights.ensure(NAME, lambda f, m: reports.append((f, m))) is True
        assert len(seen) == 1 and seen[0].endswith(fake.relpath)
        cached = data.locate(fake.name, download=False)
        assert data.blob_id(cached) == fake.blob_id and cached.read_bytes() == target.read_bytes()
        fractions = [f for f, _ in reports]
        assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
        assert any("of 1.0 MB" in m for _, m in reports) and "verified" in reports[-1][1]
        assert not weights.needs_download(NAME) and weights.ensure(NAME) is False  # no second download
        assert len(seen) == 1
        assert any(m.name == NAME and m.available for m in zoo.list_methods())  # no restart needed


def test_a_corrupted_download_is_refused_in_one_line(fake_checkpoint, monkeypatch):
    served, target, fake = fake_checkpoint
    target.write_bytes(b"x" * fake.size)  # same size, other content
    with serve_folder(served) as (url, _seen):
        monkeypatch.setenv("QSCI_MIRROR", url)
        with pytest.raises(QSCIError) as excinfo:
            weights.ensure(NAME)
    text = str(excinfo.value)
    assert "\n" not in text and "corrupted" in text and "blob id" in text
    assert weights.needs_download(NAME)  # the bad file was not kept


def test_offline_is_one_short_line(fake_checkpoint, monkeypatch):
    monkeypatch.setenv("QSCI_OFFLINE", "1")
    with pytest.raises(QSCIError) as excinfo:
        weights.ensure(NAME)
    assert str(excinfo.value) == f"{NAME}: the authors' checkpoint needs network (downloads are off here)"


def test_an_unreachable_mirror_is_one_short_line(fake_checkpoint, monkeypatch):
    from helpers_http import closed_port

    monkeypatch.setenv("QSCI_MIRROR", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setattr(data.time, "sleep", lambda s: None)  # retries without waiting
    with pytest.raises(QSCIError) as excinfo:
        weights.ensure(NAME)
    assert str(excinfo.value) == f"{NAME}: the authors' checkpoint needs network; the download failed"


def test_other_methods_never_download():
    assert not weights.needs_download("gap-tv") and weights.ensure("gap-tv") is False


def test_a_run_offline_keeps_the_other_methods(fake_checkpoint, monkeypatch):
    import numpy as np

    from qsci.scenes import simulate_scene
    from ui import handlers
    from ui.cache import ResultCache

    monkeypatch.setenv("QSCI_OFFLINE", "1")
    frames = np.random.default_rng(0).random((8, 16, 16)).astype(np.float32)
    run = handlers.reconstruct_all(simulate_scene(frames, cr=8, mask="random", seed=0), ["gap-tv", NAME],
                                   cache=ResultCache())
    assert set(run.results) == {"gap-tv"} and "needs network" in run.errors[NAME]
