"""qsci.data: registry contents, local look-up with verification, loopback downloads, offline errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from qsci import data
from qsci.errors import DataUnavailableError, InputFileError, QSCIError
from helpers_http import closed_port, serve_folder

REAL_SCENES = ("duomino", "hand", "pendulumBall", "waterBalloon")


def test_registry_lists_every_public_file():
    names = set(data.REGISTRY)
    assert {e.name for e in data.list_files("scene")} == {"kobe", "traffic", "runner8", "drop8", "crash32", "aerial32"}
    assert {e.name for e in data.list_files("mask")} == {"quantized_sci_mask", "real_mask"}
    assert {e.name for e in data.list_files("real")} == {
        f"real-{s}-cr{cr}" for s in REAL_SCENES for cr in (10, 20, 30, 40, 50)}
    assert {e.name for e in data.list_files("checkpoint")} == {
        "ckpt-official-s-fp32", "ckpt-official-s-8bit", "ckpt-official-s-4bit", "ckpt-official-s-3bit",
        "ckpt-official-s-2bit", "ckpt-official-b-fp32"}
    assert len(names) == 34
    fp = data.get("ckpt-official-s-fp32")
    assert fp.url == "https://github.com/mcao92/QuantizedSCI/raw/main/checkpoints/full_precision.pth"
    assert fp.relpath == "checkpoints/full_precision.pth" and fp.blob_id == "fafaa85e0fe8919562d39cf92964b7cb88dad8d4"
    base = data.get("ckpt-official-b-fp32")
    assert base.url == "https://github.com/ucaswangls/EfficientSCI/raw/main/checkpoints/efficientsci_base.pth"
    kobe = data.get("kobe")
    assert kobe.url.endswith("ucaswangls/EfficientSCI/raw/main/test_datasets/simulation/kobe_cacti.mat")
    assert kobe.relpath == "simulation/kobe_cacti.mat" and kobe.blob_id == "4fae56bde9bd8d308f33c2de87e9295cf5baa833"
    real = data.get("real-pendulumBall-cr30")
    assert real.relpath == "real/cr30/meas_pendulumBall_cr_30.mat" and real.cr == 30
    assert real.upstream_path == "test_datasets/real_data/cr30/meas_pendulumBall_cr_30.mat"
    for entry in data.list_files():
        assert len(entry.blob_id) == 40 and int(entry.blob_id, 16) >= 0
        data._under(Path("/x"), entry.relpath)  # every registry path is a plain relative path
    with pytest.raises(QSCIError) as e:
        data.list_files("video")
    assert str(e.value) == "unknown data kind 'video' (use one of scene, mask, real, checkpoint)"


def test_hard_coded_ids_match_the_shared_copies(data_dir):
    checked = 0
    for entry in data.list_files():
        path = data_dir / entry.relpath
        if path.is_file():
            assert entry.size == path.stat().st_size, entry.name
            assert data.blob_id(path) == entry.blob_id, entry.name
            checked += 1
    assert checked == 24  # 3 scenes, the Q-SCI mask, 20 real measurements


def test_unknown_names_and_traversal_are_refused():
    with pytest.raises(QSCIError) as e:
        data.locate("kobee")
    assert str(e.value) == "unknown data file 'kobee'; did you mean kobe?"
    with pytest.raises(QSCIError) as e:
        data.fetch("../../etc/passwd")
    assert str(e.value).startswith("unknown data file '../../etc/passwd'")
    with pytest.raises(QSCIError) as e:
        data._under(Path("/cache"), "../outside.mat")
    assert str(e.value) == "registry path '../outside.mat' is not a plain relative path"


def test_loaders_on_the_local_folder(data_dir):
    assert data.locate("drop8") == data_dir / "simulation" / "drop8_cacti.mat"
    assert data.is_available("traffic") and not data.is_available("kobe")
    orig, mask = data.load_benchmark("Drop", mask="quantized_sci_mask")
    assert orig.shape == (8, 256, 256) and orig.dtype == np.float32 and 0 <= orig.min() and orig.max() <= 1
    assert mask.shape == (8, 256, 256) and abs(mask.mean() - 0.5011921) < 1e-6  # the Q-SCI mask
    orig, own = data.load_benchmark("traffic")  # the scene file's own mask
    assert orig.shape == (48, 256, 256) and own.dtype == np.float32 and abs(own.mean() - 0.5011921) > 1e-4
    assert data.load_mask("quantized_sci_mask", cr=4).shape == (4, 256, 256)
    meas = data.load_real_measurement("real-duomino-cr20")
    assert meas.shape == (6, 512, 512) and meas.dtype == np.float32
    assert meas.max() <= 255 / 255 * 20 / 2 + 1e-5
    with pytest.raises(QSCIError) as e:
        data.load_benchmark("bicycle")
    assert str(e.value) == "unknown benchmark scene 'bicycle' (use one of kobe, traffic, runner8, drop8, crash32, aerial32)"


def test_local_verification_is_cached_and_mismatch_reported(tmp_path, data_dir, monkeypatch):
    local = tmp_path / "data"
    (local / "simulation").mkdir(parents=True)
    target = local / "simulation" / "runner8_cacti.mat"
    shutil.copyfile(data_dir / "simulation" / "runner8_cacti.mat", target)
    monkeypatch.setenv("QSCI_DATA_DIR", str(local))
    calls = []
    real_blob_id = data.blob_id
    monkeypatch.setattr(data, "blob_id", lambda p: calls.append(p) or real_blob_id(p))
    assert data.locate("runner8") == target and data.locate("runner8") == target
    assert len(calls) == 1  # hashed once per (path, mtime, size)
    blob = bytearray(target.read_bytes())
    blob[1000] ^= 0xFF
    target.write_bytes(bytes(blob))
    os.utime(target, ns=(1, 1))
    with pytest.raises(InputFileError) as e:
        data.locate("runner8")
    assert len(calls) == 2
    got = real_blob_id(target)
    assert str(e.value) == (f"runner8_cacti.mat: local copy of 'runner8' is not the registry file (git blob id {got}, "
                            f"expected 3c44c98a30c15b3941f3cdaa9b6b3ff809d3c40c); replace or remove {target}")


@pytest.fixture
def mirror(tmp_path, data_dir, monkeypatch):
    """A loopback copy of the shared data with one flipped byte and one padded file; empty local folders."""
    root = tmp_path / "mirror"
    shutil.copytree(data_dir, root, copy_function=shutil.copyfile)
    for d in [root, *root.rglob("*")]:
        if d.is_dir():
            d.chmod(0o755)
    bad = root / "mask" / "quantized_sci_mask.mat"
    blob = bytearray(bad.read_bytes())
    blob[5000] ^= 0x01
    bad.write_bytes(bytes(blob))
    with open(root / "real" / "cr20" / "meas_waterBalloon_cr_20.mat", "ab") as fh:
        fh.write(b"\0" * 1000)
    monkeypatch.setenv("QSCI_DATA_DIR", str(tmp_path / "empty-data"))
    monkeypatch.setenv("QSCI_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QSCI_OFFLINE", raising=False)
    with serve_folder(root) as (url, seen):
        monkeypatch.setenv("QSCI_MIRROR", url)
        yield url, seen, tmp_path / "cache"


def test_download_verifies_and_caches(mirror, data_dir):
    url, seen, cache = mirror
    assert not data.is_available("real-waterBalloon-cr10")
    progress = []
    path = data.fetch("real-waterBalloon-cr10", progress=lambda done, total: progress.append((done, total)))
    assert path == cache / "real" / "cr10" / "meas_waterBalloon_cr_10.mat"
    assert path.read_bytes() == (data_dir / "real" / "cr10" / "meas_waterBalloon_cr_10.mat").read_bytes()
    assert progress[-1] == (110018, 110018)
    assert seen == ["/real/cr10/meas_waterBalloon_cr_10.mat"]
    assert data.locate("real-waterBalloon-cr10") == path and data.is_available("real-waterBalloon-cr10")
    assert len(seen) == 1  # served from the cache the second time
    assert data.load_real_measurement("real-waterBalloon-cr10").shape == (1, 512, 512)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


def test_corrupted_download_is_rejected_and_deleted(mirror):
    url, _seen, cache = mirror
    with pytest.raises(DataUnavailableError) as e:
        data.fetch("quantized_sci_mask")
    text = str(e.value)
    assert text.startswith(f"quantized_sci_mask: downloaded file from {url}/mask/quantized_sci_mask.mat is "
                           "corrupted (git blob id ")
    assert text.endswith(", expected 33b0799dbade44fe468ba204e69e41eeb92ffae6) and was deleted; try again or put "
                         f"a good copy at {Path(os.environ['QSCI_DATA_DIR']) / 'mask' / 'quantized_sci_mask.mat'} "
                         f"(QSCI_DATA_DIR) or {cache / 'mask' / 'quantized_sci_mask.mat'} (cache)")
    assert list((cache / "mask").iterdir()) == []
    with pytest.raises(DataUnavailableError) as e:
        data.fetch("real-waterBalloon-cr20")
    assert str(e.value) == (f"real-waterBalloon-cr20: the server offers 109653 bytes, more than the 108653 expected; "
                            f"refusing the download from {url}/real/cr20/meas_waterBalloon_cr_20.mat")
    assert list((cache / "real" / "cr20").iterdir()) == []


def test_missing_upstream_file_and_offline_errors(mirror, monkeypatch, tmp_path):
    url, _seen, cache = mirror
    local = tmp_path / "empty-data" / "simulation" / "kobe_cacti.mat"
    with pytest.raises(DataUnavailableError) as e:
        data.fetch("kobe")
    assert str(e.value) == (f"kobe: download from {url}/simulation/kobe_cacti.mat failed (HTTP 404); put the file "
                            f"at {local} (QSCI_DATA_DIR) or {cache / 'simulation' / 'kobe_cacti.mat'} (cache)")
    port = closed_port()
    monkeypatch.setenv("QSCI_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(DataUnavailableError) as e:
        data.fetch("kobe")
    assert str(e.value) == (
        f"kobe: not found locally and the download from http://127.0.0.1:{port}/simulation/kobe_cacti.mat failed "
        f"([Errno 111] Connection refused); put kobe_cacti.mat at {local} (QSCI_DATA_DIR) or "
        f"{cache / 'simulation' / 'kobe_cacti.mat'} (cache)")
    monkeypatch.setenv("QSCI_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as e:
        data.locate("ckpt-official-s-4bit")
    assert str(e.value) == (
        "ckpt-official-s-4bit: not available locally (downloads are off); download "
        "https://github.com/mcao92/QuantizedSCI/raw/main/checkpoints/4bit.pth and put it at "
        f"{tmp_path / 'empty-data' / 'checkpoints' / '4bit.pth'} (QSCI_DATA_DIR) or "
        f"{cache / 'checkpoints' / '4bit.pth'} (cache)")
