"""Fuzzing the readers and validators: whatever the bytes or arrays, the only failure is QSCIError.

Properties checked for `read_measurement`, `read_mask`, `read_scene` and `check_pair`:
- no exception other than `qsci.errors.QSCIError`, and its message is one line;
- no hang (each example runs under a 10 s alarm);
- when a read succeeds, the result keeps the contract (float32, 3 axes, finite, masks in [0, 1],
  scenes in [0, 1]).
CI runs a few hundred examples in total. Long mode: `QSCI_FUZZ_LONG=1` (10,000 examples per test)
or `QSCI_FUZZ_EXAMPLES=N`; see docs/reliability.md for the last measured run.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from deadlines import deadline

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qsci.errors import QSCIError
from qsci.io import check_pair, read_mask, read_measurement, read_scene

_N = int(os.environ.get("QSCI_FUZZ_EXAMPLES") or (10_000 if os.environ.get("QSCI_FUZZ_LONG") else 0))


def fuzz_settings(ci_examples: int):
    """CI budget by default; the long mode swaps in the requested count."""
    return settings(max_examples=_N or ci_examples, deadline=None, database=None, derandomize=not _N,
                    suppress_health_check=list(HealthCheck))


READERS = {"measurement": read_measurement, "mask": read_mask, "scene": read_scene}
EXTS = (".mat", ".npy", ".npz", ".png", ".tif", ".mp4")


def no_hang(seconds: int = 10):
    return deadline(seconds, "reader")


@contextmanager
def stderr_text():
    """Everything written to file descriptor 2 meanwhile (C libraries, logging): the CLI's stderr
    must hold only its own one-line error, so readers must stay silent."""
    import tempfile

    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        got: list[str] = []
        try:
            yield got
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            got.append(sink.read().decode(errors="replace"))


def check_read(path, role: str) -> np.ndarray | None:
    """Read `path` as `role`: a contract-keeping array, or None after a one-line QSCIError; silently."""
    try:
        with stderr_text() as noise, no_hang():
            out = READERS[role](path)
    except QSCIError as exc:
        assert "\n" not in str(exc) and str(exc).strip(), repr(str(exc))
        assert not noise[0].strip(), f"reader wrote to stderr: {noise[0][:300]!r}"
        return None
    assert not noise[0].strip(), f"reader wrote to stderr: {noise[0][:300]!r}"
    data = out if isinstance(out, np.ndarray) else out.data
    assert data.dtype == np.float32 and data.ndim == 3 and data.size > 0
    assert np.isfinite(data).all() and data.min() >= 0
    if role in ("mask", "scene"):
        assert data.max() <= 1
    return data


# ---- valid seed files, written once ----------------------------------------------------------------


def _write_v73(path: Path, key: str, matlab: np.ndarray) -> None:
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset(key, data=matlab.T).attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file".ljust(128, b" "))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    """Bytes of one small valid file per format (all readable as a mask)."""
    import scipy.io
    import tifffile
    from PIL import Image

    from qsci.io import write_video

    d = tmp_path_factory.mktemp("seeds")
    stack = (np.random.default_rng(0).random((4, 12, 10)) > 0.5).astype(np.float32)
    writers = {
        "v5.mat": lambda p: scipy.io.savemat(p, {"mask": np.moveaxis(stack, 0, -1)}),
        "v5z.mat": lambda p: scipy.io.savemat(p, {"mask": np.moveaxis(stack, 0, -1)}, do_compression=True),
        "v73.mat": lambda p: _write_v73(p, "mask", np.moveaxis(stack, 0, -1)),
        "a.npy": lambda p: np.save(p, stack),
        "a.npz": lambda p: np.savez_compressed(p, mask=stack),
        "a.png": lambda p: Image.fromarray((stack[0] * 255).astype(np.uint8)).save(p),
        "a.tif": lambda p: tifffile.imwrite(p, stack.astype(np.uint8), photometric="minisblack"),
        "a.mp4": lambda p: write_video(p, stack),
    }
    out = {}
    for name, write in writers.items():
        write(d / name)
        out[name] = (d / name).read_bytes()
        role = "scene" if name.endswith((".png", ".mp4")) else "mask"
        assert check_read(d / name, role) is not None, name  # the seeds themselves are valid
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# ---- random bytes -------------------------------------------------------------------------------------


@fuzz_settings(120)
@given(content=st.binary(min_size=1, max_size=4096), ext=st.sampled_from(EXTS + (".tiff", ".jpg", ".bin")),
       role=st.sampled_from(list(READERS)), magic=st.sampled_from([b"", b"\x93NUMPY\x01\x00", b"PK\x03\x04",
                                                                     b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MATLAB 7.3",
                                                                     b"\x89HDF\r\n\x1a\n", b"\x00\x00\x00\x18ftyp"]))
def test_random_bytes_only_raise_qsci_errors(work, content, ext, role, magic):
    path = work / f"random{ext}"
    path.write_bytes(magic + content)
    check_read(path, role)


# ---- mutated valid files ----------------------------------------------------------------------------------


@st.composite
def mutations(draw, size: int):
    """A list of edits: flip bits, overwrite a run, cut the tail, or insert bytes."""
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "flip", "run", "cut", "insert"]))
        pos = draw(st.integers(0, max(size - 1, 0)))
        if kind == "flip":
            edits.append(("flip", pos, draw(st.integers(0, 7))))
        elif kind == "run":
            edits.append(("run", pos, draw(st.binary(min_size=1, max_size=16))))
        elif kind == "cut":
            edits.append(("cut", pos, None))
        else:
            edits.append(("insert", pos, draw(st.binary(min_size=1, max_size=16))))
    return edits


def apply(content: bytes, edits) -> bytes:
    data = bytearray(content)
    for kind, pos, arg in edits:
        pos = min(pos, max(len(data) - 1, 0))
        if not data:
            break
        if kind == "flip":
            data[pos] ^= 1 << arg
        elif kind == "run":
            data[pos:pos + len(arg)] = arg
        elif kind == "cut":
            del data[max(pos, 1):]
        else:
            data[pos:pos] = arg
    return bytes(data)


@fuzz_settings(160)
@given(data=st.data(), name=st.sampled_from(["v5.mat", "v5z.mat", "v73.mat", "a.npy", "a.npz", "a.png", "a.tif",
                                             "a.mp4"]),
       role=st.sampled_from(list(READERS)))
def test_mutated_valid_files_only_raise_qsci_errors(seeds, work, data, name, role):
    content = seeds[name]
    path = work / f"mut_{name}"
    path.write_bytes(apply(content, data.draw(mutations(len(content)))))
    check_read(path, role)


# ---- random arrays in every container ------------------------------------------------------------------------

ODD_DTYPES = st.sampled_from(["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                              "float16", "float32", "float64", "complex64", "U3", "S2", "V4", "object"])


@st.composite
def odd_arrays(draw):
    dtype = np.dtype(draw(ODD_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6))
    if dtype.kind in "biuf":
        return draw(hnp.arrays(dtype, shape, elements=None))
    if dtype.kind == "O":
        return np.array([draw(st.one_of(st.none(), st.integers(), st.text(max_size=3)))] * int(np.prod(shape)),
                        dtype=object).reshape(shape)
    return np.zeros(shape, dtype)


def _store(work: Path, arr: np.ndarray, container: str, key: str) -> Path | None:
    """Write `arr` in a container; None when that container cannot hold such an array at all."""
    import scipy.io

    path = work / f"arr.{container.split('-')[0]}"
    try:
        if container == "npy":
            np.save(path, arr, allow_pickle=True)
        elif container == "npz":
            np.savez(path, **{key: arr})
        elif container == "mat":
            scipy.io.savemat(path, {key: arr})
        elif container == "mat-v73":
            path = work / "arr73.mat"
            _write_v73(path, key, np.asarray(arr))
    except Exception:  # noqa: BLE001 - the writer refused this array; nothing to read back
        return None
    return path


@fuzz_settings(160)
@given(arr=odd_arrays(), container=st.sampled_from(["npy", "npz", "mat", "mat-v73"]),
       key=st.sampled_from(["meas", "mask", "orig", "other"]), role=st.sampled_from(list(READERS)))
def test_random_arrays_read_or_fail_cleanly(work, arr, container, key, role):
    path = _store(work, arr, container, key)
    if path is not None:
        out = check_read(path, role)
        if out is not None and container == "npy" and arr.ndim in (2, 3) and role == "measurement":
            np.testing.assert_array_equal(out.reshape(arr.shape), arr.astype(np.float32))


@fuzz_settings(200)
@given(meas=hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5)),
       mask=hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5)))
def test_check_pair_accepts_only_matching_sizes(meas, mask):
    try:
        check_pair(meas, mask)
    except QSCIError as exc:
        assert "\n" not in str(exc)
        return
    assert mask.ndim == 3 and meas.ndim >= 2 and meas.shape[-2:] == mask.shape[-2:]
