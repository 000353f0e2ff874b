"""Low-level loaders: one per file format, each returning a (T, H, W) stack in the stored dtype.

Axis rules (documented for users):
- MATLAB `.mat` (v5 and v7.3) stores (H, W) or (H, W, T): returned as (T, H, W). v7.3 files are
  HDF5, whose axes appear reversed in h5py, so they are transposed back to MATLAB order first.
- `.npy` / `.npz` store (H, W) or (T, H, W): returned as they are (2-D gets T = 1).
- Images: one frame per file (a list of files or a folder, sorted by name) or one per TIFF page.
- Videos (OpenCV): one grayscale uint8 frame per video frame.
Every loader checks the declared shape against `Limits` before reading the values.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qsci.errors import InputFileError
from qsci.io.limits import Limits
from qsci.io.validate import check_declared_shape, check_dtype, check_file, one_line

# FFmpeg prints its complaints about damaged videos straight to stderr, which breaks the CLI's
# one-line error promise. OpenCV reads this once, at its first FFmpeg use anywhere in the process
# (a VideoWriter counts), so it is set when qsci.io is imported; an explicit user value wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

MAT_EXTS = {".mat"}
NUMPY_EXTS = {".npy", ".npz"}
TIFF_EXTS = {".tif", ".tiff"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp"} | TIFF_EXTS
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
# preferred keys per role in .mat/.npz files (`recon` = what `save_frames` writes)
ROLE_KEYS = {"measurement": ("meas",), "mask": ("mask",), "scene": ("orig", "recon")}
_MAT_NUMERIC = {"double", "single", "logical", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"}


@dataclass
class Stack:
    """A loaded (T, H, W) array plus how it was found, for messages and front ends."""

    data: np.ndarray
    axis_order: str  # e.g. "H,W,T -> T,H,W"
    dtype_in: str
    key: str | None = None


class _Ctx:
    """What every loader needs: file, role, limits and the first-axis limit override."""

    def __init__(self, path: Path, role: str, limits: Limits, stack_limit: int | None):
        self.path, self.role, self.limits, self.stack_limit = path, role, limits, stack_limit

    def shape_ok(self, shape, layout: str) -> tuple[int, int, int]:
        return check_declared_shape(self.path, tuple(shape), self.role, layout, self.limits, self.stack_limit)

    def fail(self, problem: str) -> InputFileError:
        return InputFileError(self.path, one_line(problem))


def _pick_key(ctx: _Ctx, numeric: list[str], all_keys: list[str]) -> str:
    """The role's key (`meas`/`mask`/`orig`), else the only numeric array, else an error listing keys."""
    for wanted in ROLE_KEYS[ctx.role]:
        if wanted in all_keys:
            return wanted
    wanted = ROLE_KEYS[ctx.role][0]
    if len(numeric) == 1:
        return numeric[0]
    found = ", ".join(all_keys) if all_keys else "none"
    raise ctx.fail(f"no '{wanted}' array for the {ctx.role} and no single numeric array to use; keys found: {found}")


def _to_thw(arr: np.ndarray, layout: str) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[None]
    elif layout == "HWT":
        arr = np.moveaxis(arr, 2, 0)
    return np.ascontiguousarray(arr)


# ---- MATLAB -----------------------------------------------------------------------------------


def _is_hdf5(path: Path) -> bool:
    """MATLAB v7.3 files are HDF5 (usually behind a 512-byte MATLAB text header)."""
    import h5py

    with open(path, "rb") as fh:
        head = fh.read(128)
    return head.startswith(b"MATLAB 7.3") or bool(h5py.is_hdf5(str(path)))


# MAT v5 element types (miINT8 .. miUTF32, without the unused 8, 10, 11). scipy's compiled reader
# indexes a fixed table with the type, so an out-of-range type in a crafted file crashes the process
# (segmentation fault, found by tests/test_fuzz.py); every tag is checked here before scipy sees it.
_MAT5_TYPES = {1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 14, 15, 16, 17, 18}


def _check_mat5_tags(ctx: _Ctx, buf: bytes, start: int, end: int, order: str, depth: int = 0) -> None:
    """Walk the tagged elements of buf[start:end]; recurse into matrices and compressed blocks."""
    import struct
    import zlib

    if depth > 32:
        raise ctx.fail("MATLAB file nests arrays too deeply (damaged or crafted file)")
    pos = start
    while pos + 8 <= end:
        word, second = struct.unpack_from(order + "II", buf, pos)
        if word >> 16:  # small data element: type and size share the first word, data in the second
            mtype, nbytes, body, nxt = word & 0xFFFF, word >> 16, pos + 4, pos + 8
            if nbytes > 4:
                raise ctx.fail("damaged MATLAB file (bad small data element)")
        else:
            mtype, nbytes, body = word, second, pos + 8
            nxt = body + (nbytes if mtype == 15 else (nbytes + 7) // 8 * 8)
        if mtype not in _MAT5_TYPES:
            raise ctx.fail(f"damaged MATLAB file (unknown data element type {mtype} at byte {pos})")
        if body + nbytes > end:
            raise ctx.fail(f"damaged or truncated MATLAB file (element at byte {pos} runs past its end)")
        if mtype == 14:
            _check_mat5_tags(ctx, buf, body, body + nbytes, order, depth + 1)
        elif mtype == 15:
            inner = _inflate_mat5(ctx, buf[body:body + nbytes], order)
            _check_mat5_tags(ctx, inner, 0, len(inner), order, depth + 1)
        pos = nxt


def _inflate_mat5(ctx: _Ctx, packed: bytes, order: str) -> bytes:
    """A compressed variable, inflated no further than the size its own first tag declares."""
    import struct
    import zlib

    inflater = zlib.decompressobj()
    try:
        head = inflater.decompress(packed, 8)
        if len(head) < 8:
            raise ctx.fail("damaged compressed variable in the MATLAB file (no element inside)")
        word, second = struct.unpack_from(order + "II", head)
        size = 8 if word >> 16 else 8 + (second + 7) // 8 * 8
        if size > ctx.limits.max_elements * 8 + (1 << 20):
            raise ctx.fail(f"a compressed variable declares {size} bytes, more than the size limit")
        return head + inflater.decompress(inflater.unconsumed_tail, size - 8)
    except zlib.error as exc:
        raise ctx.fail(f"damaged compressed variable in the MATLAB file ({exc})") from None


def _check_mat5(ctx: _Ctx) -> None:
    data = ctx.path.read_bytes()
    if len(data) < 128:
        raise ctx.fail("not a readable MATLAB .mat file (shorter than its 128-byte header)")
    order = {b"IM": "<", b"MI": ">"}.get(data[126:128])
    if order is None or data[124:126] not in (b"\x00\x01", b"\x01\x00"):
        return  # not v5 (v4 or garbage): scipy's own checks answer with a clean error
    _check_mat5_tags(ctx, data, 128, len(data), order)


def load_mat(ctx: _Ctx) -> Stack:
    if _is_hdf5(ctx.path):
        return _load_mat73(ctx)
    import scipy.io

    _check_mat5(ctx)

    try:
        info = scipy.io.whosmat(str(ctx.path))
    except Exception as exc:  # scipy raises many types for non-MAT content
        raise ctx.fail(f"not a readable MATLAB .mat file ({type(exc).__name__}: {exc})") from None
    classes = {name: cls for name, _shape, cls in info}
    numeric = [n for n, c in classes.items() if c in _MAT_NUMERIC]
    key = _pick_key(ctx, numeric, list(classes))
    shape = dict((n, s) for n, s, _ in info)[key]
    if classes[key] not in _MAT_NUMERIC:
        raise ctx.fail(f"'{key}' is a MATLAB {classes[key]}, not a numeric array")
    ctx.shape_ok(shape, "HWT")
    try:
        arr = scipy.io.loadmat(str(ctx.path), variable_names=[key])[key]
    except Exception as exc:
        raise ctx.fail(f"cannot read '{key}' from the .mat file (truncated or damaged: {exc})") from None
    check_dtype(ctx.path, arr.dtype, ctx.role)
    ctx.shape_ok(arr.shape, "HWT")
    return Stack(_to_thw(arr, "HWT"), "H,W,T -> T,H,W (MATLAB v5)", str(arr.dtype), key)


def _load_mat73(ctx: _Ctx) -> Stack:
    import h5py

    try:
        with h5py.File(ctx.path, "r") as f:
            datasets = {k: v for k, v in f.items() if isinstance(v, h5py.Dataset) and not k.startswith("#")}
            keys = [k for k in f.keys() if not k.startswith("#")]

            def matlab_class(ds) -> str:
                cls = ds.attrs.get("MATLAB_class", b"double")
                return cls.decode() if isinstance(cls, bytes) else str(cls)

            numeric = [k for k, d in datasets.items() if matlab_class(d) in _MAT_NUMERIC and d.dtype.fields is None]
            key = _pick_key(ctx, numeric, keys)
            if key not in datasets:
                raise ctx.fail(f"'{key}' is a MATLAB struct or cell, not a numeric array")
            ds = datasets[key]
            if matlab_class(ds) == "char":
                raise ctx.fail(f"{ctx.role} holds text (MATLAB char); expected numbers")
            if "MATLAB_empty" in ds.attrs and int(np.asarray(ds.attrs["MATLAB_empty"]).ravel()[0]):
                raise ctx.fail(f"{ctx.role} array is empty")
            check_dtype(ctx.path, ds.dtype, ctx.role)
            ctx.shape_ok(tuple(reversed(ds.shape)), "HWT")
            arr = ds[()].T  # h5py sees MATLAB's axes reversed
    except InputFileError:
        raise
    except Exception as exc:
        raise ctx.fail(f"not a readable MATLAB v7.3 (HDF5) file ({type(exc).__name__}: {exc})") from None
    return Stack(_to_thw(arr, "HWT"), "H,W,T -> T,H,W (MATLAB v7.3, HDF5 axes reversed)", str(arr.dtype), key)


# ---- numpy ------------------------------------------------------------------------------------


def _npy_header(ctx: _Ctx, fh, name: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset from a .npy header, without reading the data."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    except Exception as exc:
        raise ctx.fail(f"{name} is not a valid .npy array ({exc})") from None
    return tuple(shape), np.dtype(dtype), fh.tell()


def load_npy(ctx: _Ctx) -> Stack:
    size = ctx.path.stat().st_size
    with open(ctx.path, "rb") as fh:
        shape, dtype, offset = _npy_header(ctx, fh, "content")
    check_dtype(ctx.path, dtype, ctx.role)
    ctx.shape_ok(shape, "THW")
    need = offset + int(np.prod(shape)) * dtype.itemsize
    if size < need:
        raise ctx.fail(f"file is truncated: header declares {shape} {dtype} ({need} bytes), found {size} bytes")
    try:
        arr = np.load(ctx.path, allow_pickle=False)
    except Exception as exc:
        raise ctx.fail(f"cannot read .npy data ({exc})") from None
    return Stack(_to_thw(arr, "THW"), "T,H,W (numpy, as stored)", str(arr.dtype), None)


def load_npz(ctx: _Ctx) -> Stack:
    try:
        zf = zipfile.ZipFile(ctx.path)
    except Exception as exc:
        raise ctx.fail(f"not a valid .npz archive ({exc})") from None
    with zf:
        members = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}
        headers = {}
        for name, info in members.items():
            with zf.open(info) as fh:
                headers[name] = _npy_header(ctx, fh, f"'{name}'")
        numeric = [n for n, (_s, d, _o) in headers.items() if d.kind in "biuf" and not d.hasobject]
        key = _pick_key(ctx, numeric, list(members))
        shape, dtype, offset = headers[key]
        check_dtype(ctx.path, dtype, ctx.role)
        ctx.shape_ok(shape, "THW")
        need = offset + int(np.prod(shape)) * dtype.itemsize
        if members[key].file_size != need:
            raise ctx.fail(f"'{key}' is damaged: header declares {need} bytes, archive holds {members[key].file_size}")
        try:
            with zf.open(members[key]) as fh:
                arr = np.lib.format.read_array(fh, allow_pickle=False)
        except Exception as exc:
            raise ctx.fail(f"cannot read '{key}' from the .npz archive (truncated or damaged: {exc})") from None
    return Stack(_to_thw(arr, "THW"), "T,H,W (numpy, as stored)", str(arr.dtype), key)


# ---- images -----------------------------------------------------------------------------------


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def _named(ctx: _Ctx, path: Path, problem: str) -> InputFileError:
    """Error about one frame file; names it when the source is a folder or list."""
    return ctx.fail(problem if path == ctx.path else f"{path.name}: {problem}")


def _gray(arr: np.ndarray, ctx: _Ctx, path: Path) -> np.ndarray:
    """RGB(A) (samples last) to luminance (BT.601) in the stored range; 2-D stays as it is."""
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        g = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return np.round(g).astype(arr.dtype) if arr.dtype.kind in "ui" else g.astype(arr.dtype)
    if arr.ndim != 2:
        raise _named(ctx, path, f"unsupported image layout with shape {arr.shape}")
    return arr


@contextmanager
def _tiff_damage():
    """tifffile only logs a broken page chain and reads the pages before it; collect those
    errors (from this thread only) so a truncated stack is refused instead of read short."""
    import threading

    found: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            if record.thread == threading.get_ident() and record.levelno >= logging.ERROR:
                found.append(one_line(record.getMessage().split("> ", 1)[-1], 120))

    handler = Collect()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield found
    finally:
        logger.removeHandler(handler)


def _check_tiff_chain(ctx: _Ctx, path: Path) -> None:
    """Follow the page (IFD) chain ourselves first: tifffile detects loops only at page 100 and
    otherwise walks a circular chain forever, growing memory (found with a 150-page loop)."""
    import struct

    max_pages = 4 * ctx.limits.max_scene_frames
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(16)
        order = {b"II": "<", b"MM": ">"}.get(head[:2])
        if order is None or len(head) < 16:
            return  # not a TIFF header: tifffile answers with a clean error
        version = struct.unpack_from(order + "H", head, 2)[0]
        if version == 42:
            count_fmt, off_fmt, entry, offset = "H", "I", 12, struct.unpack_from(order + "I", head, 4)[0]
        elif version == 43:
            count_fmt, off_fmt, entry, offset = "Q", "Q", 20, struct.unpack_from(order + "Q", head, 8)[0]
        else:
            return
        seen: set[int] = set()
        while offset:
            if offset in seen:
                raise _named(ctx, path, f"TIFF is damaged (page chain loops back to byte {offset})")
            if len(seen) >= max_pages:
                raise _named(ctx, path, f"TIFF has more than {max_pages} pages, the limit")
            seen.add(offset)
            fh.seek(offset)
            raw = fh.read(struct.calcsize(count_fmt))
            if offset + len(raw) > size or len(raw) < struct.calcsize(count_fmt):
                raise _named(ctx, path, f"TIFF is truncated or damaged (page at byte {offset} is missing)")
            count = struct.unpack(order + count_fmt, raw)[0]
            fh.seek(offset + len(raw) + count * entry)
            raw = fh.read(struct.calcsize(off_fmt))
            if len(raw) < struct.calcsize(off_fmt):
                raise _named(ctx, path, f"TIFF is truncated or damaged (page at byte {offset} is cut off)")
            offset = struct.unpack(order + off_fmt, raw)[0]


def _read_tiff(ctx: _Ctx, path: Path, already: int) -> list[np.ndarray]:
    import tifffile

    _check_tiff_chain(ctx, path)
    try:
        with _tiff_damage() as damage, tifffile.TiffFile(path) as tif:
            len(tif.pages)  # walk the whole IFD chain now, so a broken link is reported below
            if damage:
                raise _named(ctx, path, f"TIFF is truncated or damaged ({damage[0]})")
            series = tif.series[0]
            axes, shape = series.axes, tuple(series.shape)
            check_dtype(ctx.path, series.dtype, ctx.role)
            if "Y" not in axes or "X" not in axes:
                raise _named(ctx, path, f"TIFF without image axes (axes {axes})")
            h, w = shape[axes.index("Y")], shape[axes.index("X")]
            n = int(np.prod([s for a, s in zip(axes, shape) if a not in "YXS"]))
            ctx.shape_ok((already + n, h, w), "THW")  # before decoding any page
            arr = series.asarray()
            if damage:
                raise _named(ctx, path, f"TIFF is truncated or damaged ({damage[0]})")
    except InputFileError:
        raise
    except Exception as exc:
        raise _named(ctx, path, f"not a readable TIFF image ({type(exc).__name__}: {exc})") from None
    order = [i for i, a in enumerate(axes) if a not in "YXS"] + [axes.index("Y"), axes.index("X")]
    if "S" in axes:
        order.append(axes.index("S"))
    arr = arr.transpose(order).reshape((n, h, w) + ((shape[axes.index("S")],) if "S" in axes else ()))
    return [_gray(a, ctx, path) for a in arr]


def _read_image(ctx: _Ctx, path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:  # PIL's own bomb check (far above our limit) may fire here
            w, h = im.size
            if w * h > ctx.limits.max_pixels or max(w, h) > ctx.limits.max_side:
                raise _named(
                    ctx, path, f"image size {h}x{w} exceeds the {ctx.limits.max_side}x{ctx.limits.max_side} limit"
                )
            if im.mode in ("P", "PA", "LA", "CMYK", "YCbCr", "HSV", "LAB"):
                im = im.convert("RGB")
            arr = np.asarray(im)
    except InputFileError:
        raise
    except Image.DecompressionBombError:
        raise _named(ctx, path, f"image size exceeds the {ctx.limits.max_side}x{ctx.limits.max_side} limit "
                                "(declared size refused before decoding)") from None
    except Exception as exc:
        raise _named(ctx, path, f"not a readable image ({type(exc).__name__}: {exc})") from None
    check_dtype(ctx.path, arr.dtype, ctx.role)
    return _gray(arr, ctx, path)


def load_image_files(ctx: _Ctx, files: list[Path]) -> Stack:
    """Frames from image files in the given order; all must share size and data type."""
    if not files:
        raise ctx.fail("no image frames found (.png, .tif, .tiff, .jpg, .bmp)")
    limit = ctx.stack_limit or {"measurement": ctx.limits.max_measurements, "mask": ctx.limits.max_cr,
                                "scene": ctx.limits.max_scene_frames}[ctx.role]
    if len(files) > limit:
        ctx.shape_ok((len(files), 1, 1), "THW")
    frames: list[np.ndarray] = []
    for f in files:
        if f.suffix.lower() not in IMAGE_EXTS:
            raise _named(ctx, f, f"unsupported frame file type '{f.suffix}'")
        check_file(f, ctx.limits)
        new = _read_tiff(ctx, f, len(frames)) if f.suffix.lower() in TIFF_EXTS else [_read_image(ctx, f)]
        for fr in new:
            if frames and (fr.shape != frames[0].shape or fr.dtype != frames[0].dtype):
                raise _named(
                    ctx, f, f"frame {fr.shape[0]}x{fr.shape[1]} {fr.dtype} differs from the first frame "
                    f"{frames[0].shape[0]}x{frames[0].shape[1]} {frames[0].dtype}"
                )
            frames.append(fr)
    arr = np.stack(frames)
    ctx.shape_ok(arr.shape, "THW")
    return Stack(arr, "T,H,W (one frame per image)", str(arr.dtype), None)


def image_files_in(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS), key=_natural_key)


# ---- video ------------------------------------------------------------------------------------


_CV2_LOG_LOCK = threading.Lock()


@contextmanager
def _cv2_quiet(cv2):
    log = cv2.utils.logging
    with _CV2_LOG_LOCK:
        old = log.getLogLevel()
        log.setLogLevel(log.LOG_LEVEL_SILENT)
        try:
            yield
        finally:
            log.setLogLevel(old)


def load_video(ctx: _Ctx) -> Stack:
    import cv2

    # FFmpeg only: OpenCV's fallback backends would read the file as an image (sequence), and they
    # log to stderr; OpenCV's own logging is silenced while the file is read (found by fuzzing).
    with _cv2_quiet(cv2):
        return _read_video(ctx, cv2)


def _read_video(ctx: _Ctx, cv2) -> Stack:
    cap = cv2.VideoCapture(str(ctx.path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise ctx.fail("cannot open the video (not a video file or unsupported codec)")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if w > 0 and h > 0:
            ctx.shape_ok((max(count, 1), h, w), "THW")
        limit = ctx.stack_limit or ctx.limits.max_scene_frames
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if len(frames) >= limit:
                raise ctx.fail(f"{ctx.role} has more than {limit} frames, the limit")
            if frame.ndim == 3:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            if frames and frame.shape != frames[0].shape:
                raise ctx.fail(f"video frame {len(frames)} changes size to {frame.shape}")
            frames.append(frame)
    except InputFileError:
        raise
    except Exception as exc:
        raise ctx.fail(f"cannot decode the video ({type(exc).__name__}: {exc})") from None
    finally:
        cap.release()
    if not frames:
        raise ctx.fail("video has no decodable frames")
    arr = np.stack(frames)
    ctx.shape_ok(arr.shape, "THW")
    return Stack(arr, "T,H,W (video frames, grayscale)", str(arr.dtype), None)
