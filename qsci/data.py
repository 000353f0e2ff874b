"""Registry of the public data files (spec section 6): where they live, and how to get them.

Look-up order of `locate(name)`: the local data folder (`QSCI_DATA_DIR`, layout of the shared
data folder: `simulation/...`, `mask/...`, `real/crN/...`, `checkpoints/...`), then the cache
(`QSCI_CACHE`, default `~/.cache/qsci`, same layout), then a download from the registry URL
(or from `QSCI_MIRROR/<relpath>` when that is set; `QSCI_OFFLINE=1` forbids downloads).
Every file is identified by its git blob id, `sha1(b"blob <size>\\0" + content)`, which is
checked once per (path, mtime, size) so big files are not re-hashed on every call.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np

from qsci.errors import DataUnavailableError, InputFileError, QSCIError

QSCI_REPO = "mcao92/QuantizedSCI"
EFFICIENTSCI_REPO = "ucaswangls/EfficientSCI"
MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024  # cap when the registry does not know the size
DOWNLOAD_ATTEMPTS = 3
KINDS = ("scene", "mask", "real", "checkpoint")

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class DataFile:
    """One registry entry; `relpath` is where it lives under the data folder and the cache."""

    name: str
    kind: str
    repo: str
    upstream_path: str
    relpath: str
    blob_id: str
    size: int | None = None
    cr: int | None = None
    description: str = ""

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}/raw/main/{self.upstream_path}"


def _scene(name: str, blob: str, size: int | None, frames: int) -> DataFile:
    file = f"{name}_cacti.mat"
    return DataFile(name, "scene", EFFICIENTSCI_REPO, f"test_datasets/simulation/{file}", f"simulation/{file}",
                    blob, size, 8, f"benchmark scene, {frames} frames of 256x256")


def _ckpt(name: str, repo: str, path: str, blob: str, what: str) -> DataFile:
    return DataFile(name, "checkpoint", repo, path, path, blob, None, None, what)


# (scene, cr) -> (git blob id, size in bytes), from the byte-identical copies of the shared data.
_REAL = {
    ("duomino", 10): ("c5eb765e59cb7ce668e46d324b40f2622c6168bb", 578067),
    ("hand", 10): ("76858e5cfa90de6324b1b9fccc68f1530f82b550", 743260),
    ("pendulumBall", 10): ("62a32b9bb7fb72dbe5d57927041fe001de7f8c92", 352953),
    ("waterBalloon", 10): ("aaff59fb86bcd1c5eb01720b7260585465982104", 110018),
    ("duomino", 20): ("3b8c7756b53555466bea92713667a09e12ef4967", 606546),
    ("hand", 20): ("9b8b201eb8ccc1e9e5f43766f928dc9b70c17faa", 722644),
    ("pendulumBall", 20): ("475f14389785627a1552555955e385c25c95cc34", 363287),
    ("waterBalloon", 20): ("6a7ab22fd80a78680e8afc31141dff202a7b5ea1", 108653),
    ("duomino", 30): ("23f03629442933b4bae1d11b71d5dc05d4f98c73", 598212),
    ("hand", 30): ("752a1a6ff3b4c08025736e803a2b1d456a5e6e43", 720105),
    ("pendulumBall", 30): ("a7a098f6dde6b0e100552515b2336ad5478b49b7", 358353),
    ("waterBalloon", 30): ("c05686ced045c77341a658a29c927e7aedb05f1e", 101724),
    ("duomino", 40): ("e608d31600ae946ba389ed9be57362619ad2365a", 611990),
    ("hand", 40): ("d63facbcf549739f688486886b1d21b28f68a0e8", 711104),
    ("pendulumBall", 40): ("d602439d37f1146a1b49d274ef56622a3ef75718", 367064),
    ("waterBalloon", 40): ("013d1a901f0e4d2b6ea6296a16631002edbb870e", 99577),
    ("duomino", 50): ("cda5e27f1ff8c5a60e4f25fa58411e4e3220d826", 554971),
    ("hand", 50): ("fde751f6444ab71b89c209dbc7a4282a8b76e15e", 709740),
    ("pendulumBall", 50): ("b2d35a8e1416c36d2f0d2f92c30ae3209217f994", 362343),
    ("waterBalloon", 50): ("b541b445678d05b4c97603e9bda216d7041fa377", 98875),
}


def _real(scene: str, cr: int, blob: str, size: int) -> DataFile:
    file = f"meas_{scene}_cr_{cr}.mat"
    return DataFile(f"real-{scene}-cr{cr}", "real", QSCI_REPO, f"test_datasets/real_data/cr{cr}/{file}",
                    f"real/cr{cr}/{file}", blob, size, cr, f"real CACTI measurement, 512x512, CR {cr}")


_ENTRIES = [
    _scene("kobe", "4fae56bde9bd8d308f33c2de87e9295cf5baa833", None, 32),
    _scene("traffic", "35ce8d3f82559a0b6759e33fcc162f3602035c6c", 3663489, 48),
    _scene("runner8", "3c44c98a30c15b3941f3cdaa9b6b3ff809d3c40c", 920103, 8),
    _scene("drop8", "80cc584d1b1565f135bf9aee8541d421dc3876c9", 818894, 8),
    _scene("crash32", "b361c25111b1d614957e9499580b78a446cfd22c", None, 32),
    _scene("aerial32", "98941e3c2b870778223c71a1bae61395eb749f80", None, 32),
    DataFile("quantized_sci_mask", "mask", QSCI_REPO, "test_datasets/mask/quantized_sci_mask.mat",
             "mask/quantized_sci_mask.mat", "33b0799dbade44fe468ba204e69e41eeb92ffae6", 142054, 8,
             "Q-SCI evaluation mask, 256x256x8 binary"),
    DataFile("real_mask", "mask", EFFICIENTSCI_REPO, "test_datasets/mask/real_mask.mat", "mask/real_mask.mat",
             "b0c8a1c2c3f61294acf6e1bd6f11fcd5e20dcf9a", None, None,
             "real-camera mask, 512x512x>=50; use the first CR planes"),
    *(_real(scene, cr, blob, size) for (scene, cr), (blob, size) in _REAL.items()),
    _ckpt("ckpt-official-s-fp32", QSCI_REPO, "checkpoints/full_precision.pth",
          "fafaa85e0fe8919562d39cf92964b7cb88dad8d4", "EfficientSCI-S full precision (authors)"),
    _ckpt("ckpt-official-s-8bit", QSCI_REPO, "checkpoints/8bit.pth",
          "72db27d7bfa7b927f8bd8f0f194097d6f88b7738", "Q-SCI 8-bit (authors)"),
    _ckpt("ckpt-official-s-4bit", QSCI_REPO, "checkpoints/4bit.pth",
          "6b60c0c3bd69966f4b4ea81a6284173974bf14e7", "Q-SCI 4-bit (authors)"),
    _ckpt("ckpt-official-s-3bit", QSCI_REPO, "checkpoints/3bit.pth",
          "fc267ffc33bce5714187e8d7c99b6d2cbb343e6a", "Q-SCI 3-bit (authors)"),
    _ckpt("ckpt-official-s-2bit", QSCI_REPO, "checkpoints/2bit.pth",
          "1f27e1429dd3dcdb98beca2564162a4d823d6d48", "Q-SCI 2-bit (authors)"),
    _ckpt("ckpt-official-b-fp32", EFFICIENTSCI_REPO, "checkpoints/efficientsci_base.pth",
          "f7ab34d6d5a98b7ac0fcce5c85d613abb2daa8d2", "EfficientSCI-B full precision (authors)"),
]
REGISTRY: dict[str, DataFile] = {e.name: e for e in _ENTRIES}
# The six benchmark scenes, in the paper's order (qsci.published keeps its per-scene numbers so).
BENCHMARK_SCENES = ("kobe", "traffic", "runner8", "drop8", "crash32", "aerial32")
# The benchmark protocol's scenes: the three that the public data folder holds.
EVAL_SCENES = ("drop8", "runner8", "traffic")
EVAL_MASK = "quantized_sci_mask"  # the Q-SCI evaluation mask
MASK_ALIASES = {"quantized_sci": EVAL_MASK}
_SCENE_ALIASES = {"runner": "runner8", "drop": "drop8", "crash": "crash32", "aerial": "aerial32"}


# ---- paths and verification --------------------------------------------------------------------


def data_dir() -> Path | None:
    value = os.environ.get("QSCI_DATA_DIR", "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    value = os.environ.get("QSCI_CACHE", "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "qsci"


def _under(root: Path, relpath: str) -> Path:
    """`root/relpath`, refusing absolute paths and `..` so no name escapes its folder."""
    rel = PurePosixPath(relpath)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise QSCIError(f"registry path '{relpath}' is not a plain relative path")
    target = root.joinpath(*rel.parts)
    if not target.resolve().is_relative_to(root.resolve()):
        raise QSCIError(f"registry path '{relpath}' leaves {root}")
    return target


def get(name: str) -> DataFile:
    """The registry entry for `name`; an unknown name lists the closest known ones."""
    entry = REGISTRY.get(name)
    if entry is None:
        close = difflib.get_close_matches(str(name), REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(REGISTRY)}"
        raise QSCIError(f"unknown data file '{name}'{hint}")
    return entry


def list_files(kind: str | None = None) -> list[DataFile]:
    """Registry entries, optionally of one kind (scene, mask, real, checkpoint)."""
    if kind is not None and kind not in KINDS:
        raise QSCIError(f"unknown data kind '{kind}' (use one of {', '.join(KINDS)})")
    return [e for e in _ENTRIES if kind is None or e.kind == kind]


def blob_id(path: Path) -> str:
    """git blob id of a file, hashed in chunks."""
    size = path.stat().st_size
    h = hashlib.sha1(b"blob " + str(size).encode() + b"\0")
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_VERIFIED: dict[tuple[str, int, int], str] = {}


def _problem(path: Path, entry: DataFile) -> str | None:
    """None when `path` holds the registry's file; else what is wrong. Hashes once per version."""
    st = path.stat()
    if entry.size is not None and st.st_size != entry.size:
        return f"size {st.st_size} bytes, expected {entry.size}"
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _VERIFIED:
        _VERIFIED[key] = blob_id(path)
    if _VERIFIED[key] != entry.blob_id:
        return f"git blob id {_VERIFIED[key]}, expected {entry.blob_id}"
    return None


def _local_copy(entry: DataFile) -> Path | None:
    """A verified copy in the data folder, else in the cache (a bad cached copy is deleted)."""
    root = data_dir()
    if root is not None:
        path = _under(root, entry.relpath)
        if path.is_file():
            problem = _problem(path, entry)
            if problem:
                raise InputFileError(path, f"local copy of '{entry.name}' is not the registry file ({problem}); "
                                           f"replace or remove {path}")
            return path
    cached = _under(cache_dir(), entry.relpath)
    if cached.is_file():
        if _problem(cached, entry) is None:
            return cached
        cached.unlink(missing_ok=True)
    return None


def is_available(name: str) -> bool:
    """True when the file is local (data folder or cache) and verified; never downloads."""
    try:
        return _local_copy(get(name)) is not None
    except InputFileError:
        return False


# ---- download ----------------------------------------------------------------------------------


def download_url(entry: DataFile) -> str:
    mirror = os.environ.get("QSCI_MIRROR", "").strip()
    return f"{mirror.rstrip('/')}/{entry.relpath}" if mirror else entry.url


def _where_to_put(entry: DataFile) -> str:
    places = []
    if data_dir() is not None:
        places.append(f"{_under(data_dir(), entry.relpath)} (QSCI_DATA_DIR)")
    places.append(f"{_under(cache_dir(), entry.relpath)} (cache)")
    return " or ".join(places)


class _Retryable(Exception):
    """A transient failure (connection, timeout, short read): worth another attempt."""


def _download_once(entry: DataFile, url: str, tmp: Path, progress: Progress | None) -> None:
    cap = entry.size if entry.size is not None else MAX_DOWNLOAD_BYTES
    request = urllib.request.Request(url, headers={"User-Agent": "qsci-studio"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp, open(tmp, "wb") as out:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > cap:
                raise DataUnavailableError(f"{entry.name}: the server offers {total} bytes, more than the "
                                           f"{cap} expected; refusing the download from {url}")
            done = 0
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                done += len(chunk)
                if done > cap:
                    raise DataUnavailableError(f"{entry.name}: download from {url} exceeds {cap} bytes; refused")
                out.write(chunk)
                if progress is not None:
                    progress(done, total if total is not None else entry.size)
            if total is not None and done != total:
                raise _Retryable(f"connection closed after {done} of {total} bytes")
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise _Retryable(f"HTTP {exc.code}") from None
        raise DataUnavailableError(
            f"{entry.name}: download from {url} failed (HTTP {exc.code}); put the file at {_where_to_put(entry)}"
        ) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise _Retryable(str(getattr(exc, "reason", exc))) from None


def _download(entry: DataFile, progress: Progress | None) -> Path:
    """Download into the cache: temp file in the target folder, verify, then rename into place."""
    url = download_url(entry)
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise DataUnavailableError(f"{entry.name}: refusing to download from non-HTTP address {url}")
    target = _under(cache_dir(), entry.relpath)
    target.parent.mkdir(parents=True, exist_ok=True)
    reason = ""
    for attempt in range(DOWNLOAD_ATTEMPTS):
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            _download_once(entry, url, tmp, progress)
            problem = _problem(tmp, entry)
            if problem:
                raise DataUnavailableError(
                    f"{entry.name}: downloaded file from {url} is corrupted ({problem}) and was deleted; "
                    f"try again or put a good copy at {_where_to_put(entry)}")
            os.replace(tmp, target)
            st = target.stat()  # remember the verification for the renamed file
            _VERIFIED[(str(target.resolve()), st.st_mtime_ns, st.st_size)] = entry.blob_id
            return target
        except _Retryable as exc:
            reason = str(exc)
            if attempt + 1 < DOWNLOAD_ATTEMPTS:
                time.sleep(0.2 * 2**attempt)
        finally:
            tmp.unlink(missing_ok=True)
    raise DataUnavailableError(
        f"{entry.name}: not found locally and the download from {url} failed ({reason}); "
        f"put {PurePosixPath(entry.relpath).name} at {_where_to_put(entry)}")


def locate(name: str, download: bool = True, progress: Progress | None = None) -> Path:
    """Path of a verified copy: data folder, then cache, then (if allowed) a download."""
    entry = get(name)
    found = _local_copy(entry)
    if found is not None:
        return found
    offline = os.environ.get("QSCI_OFFLINE", "").strip() not in ("", "0")
    if not download or offline:
        raise DataUnavailableError(
            f"{entry.name}: not available locally (downloads are off); download {entry.url} "
            f"and put it at {_where_to_put(entry)}")
    return _download(entry, progress)


def fetch(name: str, progress: Progress | None = None) -> Path:
    """Make `name` available locally (downloading if needed) and return its path."""
    return locate(name, download=True, progress=progress)


# ---- loaders -----------------------------------------------------------------------------------


def scene_name(scene: str) -> str:
    key = str(scene).strip().lower()
    key = _SCENE_ALIASES.get(key, key)
    if key not in BENCHMARK_SCENES:
        raise QSCIError(f"unknown benchmark scene '{scene}' (use one of {', '.join(BENCHMARK_SCENES)})")
    return key


def load_benchmark(scene: str, mask: str = "own") -> tuple[np.ndarray, np.ndarray]:
    """(orig (F, H, W) float32 in [0, 1], mask (8, H, W) float32) of one benchmark scene.

    By default the mask is the one stored in the scene file (no extra file needed). The Q-SCI
    protocol re-simulates with the evaluation mask: pass `mask=EVAL_MASK` (or call `load_mask(EVAL_MASK)`).
    """
    from qsci.io import read_mask, read_scene

    path = fetch(scene_name(scene))
    orig = read_scene(path)
    phi = read_mask(path) if mask == "own" else load_mask(mask)
    if phi.shape[1:] != orig.shape[1:]:
        raise QSCIError(f"mask {mask} is {phi.shape[1]}x{phi.shape[2]}, scene {scene} is {orig.shape[1]}x{orig.shape[2]}")
    return orig, phi


def mask_name(spec: str | os.PathLike) -> str | os.PathLike:
    """The registry name behind a mask alias (`quantized_sci`); any other name or path unchanged.

    The one place the alias is resolved, so the CLI, evaluation, the app and training agree on it.
    """
    return MASK_ALIASES.get(spec, spec) if isinstance(spec, str) else spec


def load_mask(name_or_path: str | os.PathLike, cr: int | None = None) -> np.ndarray:
    """(T, H, W) float32 mask from a registry name or alias (mask or scene) or a file; `cr` keeps the first planes."""
    from qsci.io import read_mask

    name_or_path = mask_name(name_or_path)
    if isinstance(name_or_path, str) and name_or_path in REGISTRY:
        entry = get(name_or_path)
        if entry.kind not in ("mask", "scene"):
            raise QSCIError(f"'{name_or_path}' is a {entry.kind}, not a mask")
        return read_mask(fetch(name_or_path), cr)
    return read_mask(name_or_path, cr)


def load_real_measurement(name: str) -> np.ndarray:
    """(N, 512, 512) float32 real measurement, scaled `/ 255 * CR / 2` as the authors do."""
    from qsci.io import read_measurement

    entry = get(name)
    if entry.kind != "real":
        raise QSCIError(f"'{name}' is a {entry.kind}, not a real measurement")
    return read_measurement(fetch(name), cr=entry.cr, real_scaling=True).data
