"""Write the malformed-input corpus `tests/data/bad/` and its table `cases.json` (deterministic).

Every case is a (measurement, mask[, ground truth]) triple where exactly one file is wrong, plus
the fragment of the one-line message a user must see. `tests/test_bad_inputs.py` feeds each case
to the CLI and to the app's upload handler. Files are tiny (16x16 frames) so the corpus stays far
below 2 MB; bombs only *declare* huge sizes. Run: `python scripts/make_bad_inputs.py [OUT_DIR]`.
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "bad"
T, H, W = 8, 16, 16
_MAT_HEADER = b"MATLAB 5.0 MAT-file, written by scripts/make_bad_inputs.py".ljust(116, b" ")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def good_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(meas (1,H,W), mask (T,H,W), gt (T,H,W)) that reconstruct fine together."""
    mask = (_rng(1).random((T, H, W)) > 0.5).astype(np.float32)
    gt = _rng(2).random((T, H, W)).astype(np.float32)
    return (mask * gt).sum(0)[None].astype(np.float32), mask, gt


# ---- writers that give byte-identical output on every run ---------------------------------------


def save_mat5(path: Path, arrays: dict, **kw) -> None:
    """scipy's v5 writer stamps the time into the header: overwrite it with a fixed text."""
    import scipy.io

    scipy.io.savemat(path, arrays, **kw)
    with open(path, "r+b") as fh:
        fh.write(_MAT_HEADER)


def save_mat73(path: Path, arrays: dict, matlab_class: str = "double") -> None:
    """MATLAB v7.3 = HDF5 behind a 512-byte text block; HDF5 holds MATLAB's axes reversed."""
    import h5py

    with h5py.File(path, "w", userblock_size=512, libver="earliest") as f:
        for key, value in arrays.items():
            if isinstance(value, dict):  # a MATLAB struct is an HDF5 group
                g = f.create_group(key, track_order=False)
                g.attrs["MATLAB_class"] = np.bytes_("struct")
                for k, v in value.items():
                    g.create_dataset(k, data=np.asarray(v).T, track_times=False)
                continue
            ds = f.create_dataset(key, data=np.asarray(value).T, track_times=False)
            ds.attrs["MATLAB_class"] = np.bytes_(matlab_class)
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, written by scripts/make_bad_inputs.py".ljust(128, b" "))


def save_npz(path: Path, **arrays) -> None:
    """np.savez stamps member times; write the zip ourselves with a fixed date."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=True)
            zf.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=(2020, 1, 1, 0, 0, 0)), buf.getvalue())


def npy_header_only(path: Path, shape: tuple, descr: str = "<f4") -> None:
    """A .npy header that declares `shape` with no data behind it (a decompression bomb)."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False, "shape": shape})


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares width x height 8-bit gray pixels; the data is one tiny row."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))


def tiff_bomb(path: Path, width: int, height: int) -> None:
    """A little-endian baseline TIFF declaring width x height 8-bit gray with 8 bytes of strip data."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
            (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, 8)]
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(tags) + 4
    entries = b""
    for tag, typ, value in tags:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        entries += struct.pack("<HHI", tag, typ, 1) + packed
    body = struct.pack("<2sHI", b"II", 42, ifd_offset) + struct.pack("<H", len(tags)) + entries + b"\0\0\0\0"
    path.write_bytes(body + b"\0" * 8)


def tiff_loop(path: Path, pages: int) -> None:
    """1x1 pages whose IFD chain loops back to the first: tifffile walked it forever (memory grew)."""
    tags = [(256, 4, 1), (257, 4, 1), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8), (277, 3, 1),
            (278, 4, 1), (279, 4, 1)]
    ifd_size, first = 2 + 12 * len(tags) + 4, 16
    body = bytearray(struct.pack("<2sHI", b"II", 42, first) + b"\0" * 8)
    for i in range(pages):
        body += struct.pack("<H", len(tags))
        for tag, typ, value in tags:
            body += struct.pack("<HHI", tag, typ, 1)
            body += struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        body += struct.pack("<I", first + (i + 1) % pages * ifd_size)
    path.write_bytes(bytes(body))


def mat5_huge_dims(path: Path, key: str, rows: int, cols: int) -> None:
    """A v5 .mat whose one (uncompressed) variable declares rows x cols; only 4 values follow."""
    save_mat5(path, {key: np.ones((2, 2))}, do_compression=False)
    data = bytearray(path.read_bytes())
    # 128-byte header, miMATRIX tag (8), array-flags sub-element (16), dims tag (8), then the dims
    assert struct.unpack_from("<II", data, 128 + 8 + 16) == (5, 8), "unexpected v5 layout"
    struct.pack_into("<ii", data, 128 + 8 + 16 + 8, rows, cols)
    path.write_bytes(bytes(data))


def mat5_bad_type(path: Path) -> None:
    """A v5 .mat whose data element has type 263: crashed scipy's reader (segfault) before the tag check."""
    save_mat5(path, {"meas": np.ones((4, 4))}, do_compression=False)
    data = bytearray(path.read_bytes())
    # after the header: matrix tag (8), flags (16), dims tag + 2 dims (16), name 'meas' small element (8)
    pos = 128 + 8 + 16 + 16 + 8
    assert struct.unpack_from("<I", data, pos)[0] == 9, "unexpected v5 layout"  # miDOUBLE
    struct.pack_into("<I", data, pos, 263)
    path.write_bytes(bytes(data))


def mat5_zip_bomb(path: Path) -> None:
    """A v5 .mat with one compressed variable whose inner tag declares 3 GiB (a few KiB of zeros follow)."""
    inner = struct.pack("<II", 14, 3 << 30) + b"\0" * 4096
    blob = zlib.compress(inner, 9)
    path.write_bytes(_MAT_HEADER + b"\0" * 8 + struct.pack("<HH", 0x0100, 0x4D49)
                     + struct.pack("<II", 15, len(blob)) + blob)


def h5_huge_shape(path: Path, key: str, shape: tuple) -> None:
    """A v7.3 .mat with a chunked dataset of a huge shape and no chunk ever written."""
    import h5py

    with h5py.File(path, "w", userblock_size=512, libver="earliest") as f:
        ds = f.create_dataset(key, shape=shape, dtype="f8", chunks=(16, 16), track_times=False)
        ds.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, written by scripts/make_bad_inputs.py".ljust(128, b" "))


def save_png(path: Path, frame_u8: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(frame_u8).save(path, format="PNG", optimize=False)


def save_tif(path: Path, stack: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(path, stack, photometric="minisblack", metadata=None, software=None, datetime=None)


def save_video(path: Path, frames: np.ndarray) -> None:
    """An MP4 through OpenCV's bundled encoder (mp4v), deterministic for the same frames."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 8, (frames.shape[2], frames.shape[1]),
                             isColor=False)
    for f in frames:
        writer.write(f)
    writer.release()


def truncate(src: Path, dst: Path, keep: float = 0.5) -> None:
    data = src.read_bytes()
    dst.write_bytes(data[: max(1, int(len(data) * keep))])


# ---- the cases ----------------------------------------------------------------------------------

GOOD = {"meas": "good_meas.npy", "mask": "good_mask.npy"}


class _Corpus:
    """Collects files and cases; `add` records which file is the bad one and the expected text."""

    def __init__(self, out: Path):
        self.out, self.cases = out, []

    def p(self, name: str) -> Path:
        return self.out / name

    def add(self, case_id: str, what: str, expect: str, **files: str) -> None:
        entry = {"id": case_id, "what": what, "meas": files.get("meas", GOOD["meas"]),
                 "mask": files.get("mask", GOOD["mask"]), "gt": files.get("gt"), "expect": expect}
        self.cases.append(entry)


def build(out: Path = OUT) -> list[dict]:
    """(Re)write every file of the corpus into `out`; returns the case table."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    c = _Corpus(out)
    meas, mask, gt = good_arrays()
    np.save(c.p("good_meas.npy"), meas)
    np.save(c.p("good_mask.npy"), mask)
    np.save(c.p("good_gt.npy"), gt)
    matlab_mask = np.moveaxis(mask, 0, -1)  # (H, W, T)

    # empty and truncated files, every format
    for name in ("empty_meas.npy", "empty_mask.mat", "empty_gt.mp4"):
        c.p(name).write_bytes(b"")
    c.add("empty-npy-meas", "zero-byte .npy measurement", "file is empty", meas="empty_meas.npy")
    c.add("empty-mat-mask", "zero-byte .mat mask", "file is empty", mask="empty_mask.mat")
    c.add("empty-mp4-gt", "zero-byte video as ground truth", "file is empty", gt="empty_gt.mp4")

    np.save(c.p("_full.npy"), np.repeat(meas, 4, axis=0))
    truncate(c.p("_full.npy"), c.p("trunc_meas.npy"), 0.6)
    c.add("trunc-npy", "truncated .npy data", "file is truncated", meas="trunc_meas.npy")
    save_mat5(c.p("_full5.mat"), {"mask": _rng(3).random((H, W, T))}, do_compression=True)
    truncate(c.p("_full5.mat"), c.p("trunc_mask_v5.mat"))
    c.add("trunc-mat5", "truncated compressed v5 .mat", "truncated MATLAB file", mask="trunc_mask_v5.mat")
    save_mat73(c.p("_full73.mat"), {"mask": matlab_mask})
    truncate(c.p("_full73.mat"), c.p("trunc_mask_v73.mat"))
    c.add("trunc-mat73", "truncated v7.3 (HDF5) .mat", "not a readable MATLAB v7.3", mask="trunc_mask_v73.mat")
    save_npz(c.p("_full.npz"), meas=meas)
    truncate(c.p("_full.npz"), c.p("trunc_meas.npz"), 0.7)
    c.add("trunc-npz", "truncated .npz archive", "not a valid .npz archive", meas="trunc_meas.npz")
    save_png(c.p("_full.png"), (meas[0] / meas.max() * 255).astype(np.uint8))
    truncate(c.p("_full.png"), c.p("trunc_meas.png"), 0.6)
    c.add("trunc-png", "truncated PNG", "not a readable image", meas="trunc_meas.png")
    save_tif(c.p("_full.tif"), (mask * 255).astype(np.uint8) // 255)
    truncate(c.p("_full.tif"), c.p("trunc_mask.tif"), 0.4)
    c.add("trunc-tif", "truncated TIFF stack (pages cut off)", "TIFF is truncated or damaged", mask="trunc_mask.tif")
    save_video(c.p("_full.mp4"), (gt * 255).astype(np.uint8))
    truncate(c.p("_full.mp4"), c.p("trunc_gt.mp4"), 0.3)
    c.add("trunc-mp4-gt", "truncated video as ground truth", "video", gt="trunc_gt.mp4")

    # wrong extensions and files that are not what they claim
    c.p("meas.txt").write_text("1 2 3\n")
    c.add("ext-txt", "unsupported extension", "unsupported file type '.txt'", meas="meas.txt")
    shutil.copy(c.p("good_meas.npy"), c.p("meas_h5.h5"))
    c.add("ext-h5", "HDF5 extension not accepted", "unsupported file type '.h5'", meas="meas_h5.h5")
    shutil.copy(c.p("good_meas.npy"), c.p("npy_named.mat"))
    c.add("npy-as-mat", ".npy content named .mat", "not a readable MATLAB .mat file", meas="npy_named.mat")
    shutil.copy(c.p("_full.png"), c.p("png_named.npy"))
    c.add("png-as-npy", "PNG content named .npy", "not a valid .npy array", meas="png_named.npy")
    c.p("text.png").write_text("this is not an image\n")
    c.add("text-png", "text file named .png", "not a readable image", mask="text.png")
    c.p("text.tif").write_bytes(b"II*\0" + b"garbage" * 8)
    c.add("garbage-tif", "TIFF magic followed by garbage", "TIFF is truncated or damaged", mask="text.tif")
    c.p("text.mp4").write_text("not a video at all\n" * 4)
    c.add("text-mp4-gt", "text file named .mp4 as ground truth", "cannot open the video", gt="text.mp4")
    save_video(c.p("meas_video.mp4"), (gt * 255).astype(np.uint8))
    c.add("video-as-meas", "a video given as the measurement", "video files are accepted only for ground-truth",
          meas="meas_video.mp4")

    # pickles and objects
    np.save(c.p("object_meas.npy"), np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    c.add("npy-object", ".npy with an object (pickle) array", "pickled Python objects are never loaded",
          meas="object_meas.npy")
    save_npz(c.p("object_mask.npz"), mask=np.array([1, "x", None], dtype=object))
    c.add("npz-object", ".npz member with an object (pickle) array", "pickled Python objects are never loaded",
          mask="object_mask.npz")

    # wrong keys, classes and ranks
    save_mat5(c.p("wrongkeys_v5.mat"), {"foo": meas[0], "bar": meas[0]})
    c.add("mat5-keys", "v5 .mat without 'meas' and two candidates", "no 'meas' array", meas="wrongkeys_v5.mat")
    save_mat73(c.p("wrongkeys_v73.mat"), {"a": matlab_mask, "b": matlab_mask})
    c.add("mat73-keys", "v7.3 .mat without 'mask' and two candidates", "no 'mask' array", mask="wrongkeys_v73.mat")
    save_mat5(c.p("cell_v5.mat"), {"meas": np.array([[1.0, "a"]], dtype=object)})
    c.add("mat5-cell", "'meas' is a MATLAB cell", "is a MATLAB cell, not a numeric array", meas="cell_v5.mat")
    save_mat73(c.p("struct_v73.mat"), {"meas": {"x": meas[0]}})
    c.add("mat73-struct", "'meas' is a MATLAB struct", "struct or cell, not a numeric array", meas="struct_v73.mat")
    np.save(c.p("rank4_meas.npy"), np.ones((1, 1, H, W), np.float32))
    c.add("rank4", "4-axis measurement", "must have 2 or 3 axes", meas="rank4_meas.npy")
    np.save(c.p("rank1_mask.npy"), np.ones(W, np.float32))
    c.add("rank1", "1-axis mask", "must have 2 or 3 axes", mask="rank1_mask.npy")

    # dtypes and values
    np.save(c.p("complex_meas.npy"), meas.astype(np.complex64))
    c.add("npy-complex", "complex measurement", "complex data type", meas="complex_meas.npy")
    save_mat5(c.p("complex_mask.mat"), {"mask": matlab_mask + 1j})
    c.add("mat5-complex", "complex mask in v5 .mat", "complex data type", mask="complex_mask.mat")
    save_mat5(c.p("char_mask.mat"), {"mask": "not a mask"})
    c.add("mat5-char", "mask is MATLAB text", "is a MATLAB char, not a numeric array", mask="char_mask.mat")
    save_mat73(c.p("char_mask_v73.mat"), {"mask": np.frombuffer(b"textmask", np.uint8).astype(np.uint16)[None]},
               matlab_class="char")
    c.add("mat73-char", "mask is MATLAB v7.3 text", "holds text", mask="char_mask_v73.mat")
    np.save(c.p("string_meas.npy"), np.array([["a", "b"], ["c", "d"]]))
    c.add("npy-string", "measurement of strings", "holds text", meas="string_meas.npy")
    np.save(c.p("record_meas.npy"), np.zeros((H, W), dtype=[("a", "<f4"), ("b", "<i2")]))
    c.add("npy-struct", "structured dtype measurement", "structured data type", meas="record_meas.npy")
    bad = meas.copy()
    bad[0, 3, 4] = np.nan
    np.save(c.p("nan_meas.npy"), bad)
    c.add("nan-meas", "NaN in the measurement", "NaN or Inf", meas="nan_meas.npy")
    np.save(c.p("overflow_meas.npy"), meas.astype(np.float64) * 1e38)
    c.add("meas-float32-overflow", "float64 values beyond float32 (became Inf; found by fuzzing)",
          "exceed the float32 range", meas="overflow_meas.npy")
    inf_mask = matlab_mask.copy()
    inf_mask[0, 0, 0] = np.inf
    save_mat73(c.p("inf_mask_v73.mat"), {"mask": inf_mask})
    c.add("inf-mask", "Inf in a v7.3 mask", "NaN or Inf", mask="inf_mask_v73.mat")
    save_mat5(c.p("negative_meas.mat"), {"meas": meas[0] - 1.0})
    c.add("negative-meas", "negative measurement values", "negative values", meas="negative_meas.mat")
    np.save(c.p("negative_mask.npy"), mask - 0.5)
    c.add("negative-mask", "negative mask values", "negative values", mask="negative_mask.npy")
    save_npz(c.p("zero_mask.npz"), mask=np.zeros_like(mask))
    c.add("zero-mask", "all-zero mask", "mask is all zeros", mask="zero_mask.npz")
    np.save(c.p("mask255.npy"), (mask * 255).astype(np.uint8))
    c.add("mask-0-255", "mask on a 0..255 scale", "mask values must lie in [0, 1]", mask="mask255.npy")
    save_tif(c.p("mask2.tif"), mask * 2.0)
    c.add("mask-gt1-tif", "float TIFF mask with values 2", "mask values must lie in [0, 1]", mask="mask2.tif")

    # sizes: mismatch, CR, counts
    np.save(c.p("small_mask.npy"), mask[:, :12, :12])
    c.add("size-mismatch", "mask 12x12, measurement 16x16", "does not match the mask size", mask="small_mask.npy")
    save_png(c.p("meas_wide.png"), np.full((H, W + 4), 10, np.uint8))
    c.add("size-mismatch-png", "PNG measurement 16x20 with a 16x16 mask", "does not match the mask size",
          meas="meas_wide.png")
    np.save(c.p("cr65_mask.npy"), np.ones((65, 4, 4), np.uint8))
    c.add("cr-over-limit", "mask with 65 planes (limit 64)", "more than the limit of 64", mask="cr65_mask.npy")
    np.save(c.p("many_meas.npy"), np.ones((65, H, W), np.uint8))
    c.add("meas-count-over-limit", "65 measurements (limit 64)", "more than the limit of 64", meas="many_meas.npy")

    # declared-size bombs
    npy_header_only(c.p("bomb_meas.npy"), (4, 100000, 100000))
    c.add("bomb-npy", ".npy header claiming 4x100000x100000", "exceeds the 2048x2048 limit", meas="bomb_meas.npy")
    npy_header_only(c.p("bomb_frames.npy"), (1000000, 16, 16))
    c.add("bomb-npy-frames", ".npy header claiming a million planes", "more than the limit", mask="bomb_frames.npy")
    buf_path = c.p("_bomb_member.npy")
    npy_header_only(buf_path, (8, 50000, 50000), "<f8")
    import zipfile

    with zipfile.ZipFile(c.p("bomb_mask.npz"), "w") as zf:
        zf.writestr(zipfile.ZipInfo("mask.npy", date_time=(2020, 1, 1, 0, 0, 0)), buf_path.read_bytes())
    c.add("bomb-npz", ".npz member header claiming 8x50000x50000", "exceeds the 2048x2048 limit",
          mask="bomb_mask.npz")
    png_bomb(c.p("bomb.png"), 100000, 100000)
    c.add("bomb-png", "PNG declaring 100000x100000 pixels", "exceeds the 2048x2048 limit", meas="bomb.png")
    tiff_bomb(c.p("bomb.tif"), 60000, 60000)
    c.add("bomb-tif", "TIFF declaring 60000x60000 pixels", "exceeds the 2048x2048 limit", mask="bomb.tif")
    tiff_loop(c.p("loop.tif"), 150)
    c.add("tif-loop", "TIFF whose 150-page chain loops (hung tifffile)", "page chain loops", mask="loop.tif")
    h5_huge_shape(c.p("bomb_v73.mat"), "meas", (100000, 100000))
    c.add("bomb-h5", "v7.3 dataset of 100000x100000 with no data", "exceeds the 2048x2048 limit",
          meas="bomb_v73.mat")
    mat5_huge_dims(c.p("bomb_v5.mat"), "mask", 100000, 100000)
    c.add("bomb-mat5", "v5 .mat variable declaring 100000x100000", "exceeds the 2048x2048 limit",
          mask="bomb_v5.mat")

    mat5_bad_type(c.p("badtype_v5.mat"))
    c.add("mat5-bad-type", "v5 element type 263 (crashed scipy before the tag check)", "unknown data element type",
          meas="badtype_v5.mat")
    mat5_zip_bomb(c.p("zipbomb_v5.mat"))
    c.add("mat5-zip-bomb", "compressed v5 variable declaring 3 GiB", "more than the size limit", mask="zipbomb_v5.mat")

    # ground truth problems (measurement and mask are fine)
    save_video(c.p("one_frame.mp4"), (gt[:1] * 255).astype(np.uint8))
    c.add("gt-one-frame", "one-frame video as ground truth (8 needed)", "need 8", gt="one_frame.mp4")
    np.save(c.p("gt_small.npy"), gt[:, :8, :8])
    c.add("gt-size", "ground truth 8x8 for a 16x16 mask", "ground-truth frames are", gt="gt_small.npy")
    np.save(c.p("gt_bright.npy"), gt * 300)
    c.add("gt-range", "ground truth values up to 300", "scene values must lie in [0, 1]", gt="gt_bright.npy")
    gt_nan = gt.copy()
    gt_nan[2, 2, 2] = np.nan
    save_mat5(c.p("gt_nan.mat"), {"orig": np.moveaxis(gt_nan, 0, -1)})
    c.add("gt-nan", "NaN in the ground truth", "NaN or Inf", gt="gt_nan.mat")

    for tmp in out.glob("_*"):
        tmp.unlink()
    (out / "cases.json").write_text(json.dumps({"cases": c.cases}, indent=1) + "\n")
    return c.cases


def load_cases(folder: Path = OUT) -> list[dict]:
    return json.loads((folder / "cases.json").read_text())["cases"]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    cases = build(target)
    size = sum(f.stat().st_size for f in target.iterdir())
    print(f"{len(cases)} cases, {len(list(target.iterdir()))} files, {size / 1024:.1f} KiB in {target}")
