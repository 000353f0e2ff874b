"""Negative integer uploads are refused in every format and role (the fuzz test was the only guard).

Signed integer files (int8..int64 in .npy/.npz/.mat/.tif) are data like floats: a negative count of
photons is impossible, so each reader names the file and the minimum.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io as sio
import tifffile

from qsci.cli import main as cli_main
from qsci.errors import InputFileError
from qsci.io import read_mask, read_measurement, read_scene

READERS = {"measurement": read_measurement, "mask": read_mask, "scene": read_scene}


def _array(dtype: str) -> np.ndarray:
    a = np.ones((2, 8, 8), dtype)
    a[1, 3, 4] = -3
    return a


WRITERS = {
    "npy": lambda p, a: np.save(p, a),
    "npz": lambda p, a: np.savez(p, data=a),
    "mat": lambda p, a: sio.savemat(p, {"data": np.moveaxis(a, 0, -1)}),  # MATLAB (H, W, T)
    "tif": lambda p, a: tifffile.imwrite(p, a, photometric="minisblack"),
}


@pytest.mark.parametrize("role", list(READERS))
@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64"])
@pytest.mark.parametrize("ext", list(WRITERS))
def test_negative_integers_are_refused(tmp_path, role, dtype, ext):
    path = tmp_path / f"neg.{ext}"
    WRITERS[ext](path, _array(dtype))
    with pytest.raises(InputFileError) as err:
        READERS[role](path)
    assert str(err.value) == f"neg.{ext}: {role} contains negative values (min -3)"


def test_non_negative_signed_integers_are_accepted(tmp_path):
    a = np.abs(_array("int16"))
    np.save(tmp_path / "ok.npy", a)
    np.testing.assert_array_equal(read_measurement(tmp_path / "ok.npy").data, a.astype(np.float32))
    np.save(tmp_path / "mask.npy", np.minimum(a, 1).astype(np.int8))
    assert read_mask(tmp_path / "mask.npy").max() == 1.0


def test_cli_refuses_a_negative_integer_measurement(tmp_path, capsys):
    np.save(tmp_path / "meas.npy", _array("int32"))
    np.save(tmp_path / "mask.npy", np.ones((2, 8, 8), np.uint8))
    code = cli_main(["reconstruct", "--meas", str(tmp_path / "meas.npy"), "--mask", str(tmp_path / "mask.npy"),
                     "--out", str(tmp_path / "out.npz")])
    assert code == 2
    assert capsys.readouterr().err.strip() == "error: meas.npy: measurement contains negative values (min -3)"
