"""qsci.io: readers on the shared data and on files made here, validation errors, writers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from qsci.errors import InputFileError, QSCIError
from qsci.io import Limits, check_pair, read_mask, read_measurement, read_scene, save_frames, write_video


def _err(excinfo) -> str:
    assert isinstance(excinfo.value, InputFileError)
    return str(excinfo.value)


# ---- shared data ------------------------------------------------------------------------------


def test_real_measurement_stack_moves_k_first_and_scales(data_dir):
    path = data_dir / "real" / "cr10" / "meas_hand_cr_10.mat"
    raw = scipy.io.loadmat(str(path))["meas"]  # (512, 512, 4) uint8
    m = read_measurement(path)
    assert m.data.shape == (4, 512, 512) and m.data.dtype == np.float32
    assert m.dtype_in == "uint8" and m.key == "meas" and not m.scaled
    assert m.axis_order.startswith("H,W,T -> T,H,W")
    np.testing.assert_array_equal(m.data[2], raw[:, :, 2].astype(np.float32))
    s = read_measurement(path, cr=10, real_scaling=True)
    assert s.scaled and s.cr == 10
    np.testing.assert_allclose(s.data[1, 100, 200], raw[100, 200, 1] / 255 * 10 / 2, rtol=1e-6)
    assert s.describe() == ("4 measurements of 512x512, stored uint8, axes H,W,T -> T,H,W (MATLAB v5), "
                            "key 'meas', scaled /255*CR/2 with CR 10")


def test_single_real_measurement_becomes_n1(data_dir):
    m = read_measurement(data_dir / "real" / "cr50" / "meas_waterBalloon_cr_50.mat")
    assert m.data.shape == (1, 512, 512) and m.count == 1 and m.size == (512, 512)


def test_real_scaling_needs_cr(data_dir):
    with pytest.raises(InputFileError) as e:
        read_measurement(data_dir / "real" / "cr10" / "meas_hand_cr_10.mat", real_scaling=True)
    assert _err(e) == "meas_hand_cr_10.mat: real_scaling needs the compression ratio: pass cr (the mask's T)"


def test_quantized_mask_and_scene_files(data_dir):
    mask = read_mask(data_dir / "mask" / "quantized_sci_mask.mat")
    assert mask.shape == (8, 256, 256) and mask.dtype == np.float32
    assert set(np.unique(mask)) == {0.0, 1.0} and abs(mask.mean() - 0.5011921) < 1e-6
    assert read_mask(data_dir / "mask" / "quantized_sci_mask.mat", cr=3).shape == (3, 256, 256)
    drop = data_dir / "simulation" / "drop8_cacti.mat"
    orig = read_scene(drop)
    raw = scipy.io.loadmat(str(drop))["orig"]
    assert orig.shape == (8, 256, 256) and orig.dtype == np.float32
    np.testing.assert_allclose(orig[5], raw[:, :, 5] / 255.0, atol=1e-7)
    own = read_mask(drop)  # uint8 0/1 mask is fine
    assert own.shape == (8, 256, 256) and abs(own.mean() - 0.498024) < 1e-6
    assert read_measurement(drop).data.shape == (5, 256, 256)


def test_mask_cr_larger_than_planes(data_dir):
    with pytest.raises(InputFileError) as e:
        read_mask(data_dir / "mask" / "quantized_sci_mask.mat", cr=10)
    assert _err(e) == "quantized_sci_mask.mat: mask has 8 planes, fewer than the requested CR 10"


# ---- MATLAB v7.3 and key choice -----------------------------------------------------------------


def _write_v73(path, **arrays):
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        for key, matlab_array in arrays.items():
            ds = f.create_dataset(key, data=np.asarray(matlab_array).T)  # HDF5 holds MATLAB axes reversed
            ds.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, written by the qsci tests".ljust(128, b" "))


def test_v73_files_are_transposed_to_time_first(tmp_path):
    rng = np.random.default_rng(1)
    matlab = rng.random((6, 4, 3))  # MATLAB (H, W, T)
    path = tmp_path / "scene73.mat"
    _write_v73(path, orig=matlab, other=np.ones((2, 2)))
    out = read_scene(path)
    assert out.shape == (3, 6, 4)
    np.testing.assert_allclose(out[2, 5, 1], matlab[5, 1, 2], rtol=1e-6)
    np.testing.assert_allclose(out, np.moveaxis(matlab, 2, 0).astype(np.float32))


def test_v73_key_errors_and_single_array(tmp_path):
    path = tmp_path / "two73.mat"
    _write_v73(path, a=np.ones((4, 4)), b=np.ones((4, 4)))
    with pytest.raises(InputFileError) as e:
        read_measurement(path)
    assert _err(e) == ("two73.mat: no 'meas' array for the measurement and no single numeric array to use; "
                       "keys found: a, b")
    one = tmp_path / "one73.mat"
    _write_v73(one, y=np.full((5, 7), 2.0))
    m = read_measurement(one)
    assert m.data.shape == (1, 5, 7) and m.key == "y" and "v7.3" in m.axis_order


def test_v5_key_choice(tmp_path):
    path = tmp_path / "keys.mat"
    scipy.io.savemat(path, {"x": np.ones((4, 4)), "label": "hello"})
    assert read_mask(path).shape == (1, 4, 4)  # only one numeric array
    scipy.io.savemat(path, {"x": np.ones((4, 4)), "z": np.ones((4, 4))})
    with pytest.raises(InputFileError) as e:
        read_mask(path)
    assert _err(e) == "keys.mat: no 'mask' array for the mask and no single numeric array to use; keys found: x, z"


# ---- numpy, images, video -------------------------------------------------------------------------


def test_npy_and_npz_are_read_as_stored(tmp_path):
    stack = np.random.default_rng(0).random((3, 5, 7)).astype(np.float32)
    np.save(tmp_path / "m.npy", stack)
    m = read_measurement(tmp_path / "m.npy")
    assert m.data.shape == (3, 5, 7) and m.axis_order == "T,H,W (numpy, as stored)"
    np.testing.assert_array_equal(m.data, stack)
    np.savez(tmp_path / "s.npz", orig=(stack * 255).astype(np.uint8), extra=np.arange(3))
    np.testing.assert_allclose(read_scene(tmp_path / "s.npz"), np.floor(stack * 255) / 255, atol=1e-7)
    np.save(tmp_path / "one.npy", stack[0])
    assert read_measurement(tmp_path / "one.npy").data.shape == (1, 5, 7)


def test_png_frames_folder_list_and_multipage_tiff(tmp_path):
    import tifffile
    from PIL import Image

    frames = np.random.default_rng(2).integers(0, 256, (4, 6, 9), dtype=np.uint8)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):  # names sort naturally: f2 before f10
        Image.fromarray(f).save(folder / f"f{[10, 2, 33, 4][i]}.png")
    order = np.argsort([10, 2, 33, 4])
    np.testing.assert_allclose(read_scene(folder), frames[order] / 255.0, atol=1e-7)
    listed = [folder / "f33.png", folder / "f2.png"]
    np.testing.assert_allclose(read_scene(listed), frames[[2, 1]] / 255.0, atol=1e-7)
    tifffile.imwrite(tmp_path / "stack.tif", frames.astype(np.uint16) * 3, photometric="minisblack")
    m = read_measurement(tmp_path / "stack.tif")
    np.testing.assert_array_equal(m.data, frames.astype(np.float32) * 3)
    rgb = np.stack([frames[0]] * 3, axis=-1)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_measurement(tmp_path / "rgb.png").data[0], frames[0])


def test_video_round_trip(tmp_path):
    t = np.linspace(0, 1, 6, dtype=np.float32)[:, None, None]
    frames = np.broadcast_to(t, (6, 20, 30)).copy()
    out = write_video(tmp_path / "clip.mp4", frames, fps=5)
    assert out.suffix == ".mp4"
    back = read_scene(out)
    assert back.shape == (6, 20, 30) and back.dtype == np.float32
    np.testing.assert_allclose(back.mean(axis=(1, 2)), t.ravel(), atol=0.03)
    with pytest.raises(InputFileError) as e:
        read_measurement(out)
    assert _err(e) == "clip.mp4: video files are accepted only for ground-truth scenes, not for a measurement"


# ---- validation errors ------------------------------------------------------------------------


def test_file_level_errors(tmp_path):
    (tmp_path / "empty.mat").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.mat").write_bytes(b"this is not matlab at all" * 20)
    (tmp_path / "fake.npy").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    (tmp_path / "fake.png").write_bytes(b"\x93NUMPY" + b"0" * 100)
    cases = {
        "empty.mat": "empty.mat: file is empty (0 bytes)",
        "missing.npy": "missing.npy: file not found",
        "notes.txt": "notes.txt: unsupported file type '.txt' (use .mat, .npy, .npz, .png, .tif/.tiff, "
                     "a folder of frames)",
    }
    for name, message in cases.items():
        with pytest.raises(InputFileError) as e:
            read_measurement(tmp_path / name)
        assert _err(e) == message
    for name, start in [("fake.mat", "fake.mat: not a readable MATLAB .mat file"),
                        ("fake.npy", "fake.npy: content is not a valid .npy array"),
                        ("fake.png", "fake.png: not a readable image")]:
        with pytest.raises(InputFileError) as e:
            read_measurement(tmp_path / name)
        assert _err(e).startswith(start) and "\n" not in _err(e)
    np.save(tmp_path / "big.npy", np.ones((2, 2)))
    with pytest.raises(InputFileError) as e:
        read_measurement(tmp_path / "big.npy", limits=Limits(max_file_bytes=100))
    assert _err(e) == "big.npy: file is 160 bytes, more than the 100 bytes limit"


def test_truncated_files(tmp_path):
    np.save(tmp_path / "t.npy", np.ones((4, 8, 8), np.float32))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-100])
    with pytest.raises(InputFileError) as e:
        read_measurement(tmp_path / "t.npy")
    assert _err(e) == "t.npy: file is truncated: header declares (4, 8, 8) float32 (1152 bytes), found 1052 bytes"
    scipy.io.savemat(tmp_path / "t.mat", {"meas": np.random.default_rng(0).random((64, 64))})
    data = (tmp_path / "t.mat").read_bytes()
    (tmp_path / "t.mat").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError) as e:
        read_measurement(tmp_path / "t.mat")
    assert _err(e).startswith("t.mat: ")


def test_declared_size_rejected_before_loading(tmp_path):
    """A header claiming 4 x 100000 x 100000 values with no data behind it: rejected by the header."""
    with open(tmp_path / "bomb.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (4, 100000, 100000)})
    with pytest.raises(InputFileError) as e:
        read_measurement(tmp_path / "bomb.npy")
    assert _err(e) == "bomb.npy: frame size 100000x100000 exceeds the 2048x2048 limit"
    from PIL import Image

    Image.new("L", (300, 200)).save(tmp_path / "wide.png")
    with pytest.raises(InputFileError) as e:
        read_scene(tmp_path / "wide.png", limits=Limits(max_side=256))
    assert _err(e) == "wide.png: image size 200x300 exceeds the 256x256 limit"
    np.save(tmp_path / "deep.npy", np.zeros((70, 2, 2), np.uint8))
    with pytest.raises(InputFileError) as e:
        read_mask(tmp_path / "deep.npy")
    assert _err(e) == "deep.npy: mask has 70 planes (CR), more than the limit of 64"
    with pytest.raises(InputFileError) as e:
        read_measurement(tmp_path / "deep.npy")
    assert _err(e) == "deep.npy: measurement has 70 measurements, more than the limit of 64"
    with pytest.raises(InputFileError) as e:
        read_scene(tmp_path / "deep.npy", limits=Limits(max_scene_frames=16))
    assert _err(e) == "deep.npy: scene has 70 frames, more than the limit of 16"


@pytest.mark.parametrize(
    "array, role, message",
    [
        (np.ones((2, 3, 4, 5)), "measurement",
         "x.npy: measurement must have 2 or 3 axes (H, W) or (K, H, W), got 4 axes with shape (2, 3, 4, 5)"),
        (np.ones((3, 3), np.complex64), "measurement",
         "x.npy: measurement has complex data type complex64; expected real numbers"),
        (np.array([["a", "b"], ["c", "d"]]), "scene", "x.npy: scene holds text (data type <U1); expected numbers"),
        (np.array([[1.0, np.nan], [0, 1]]), "measurement", "x.npy: measurement contains NaN or Inf values (1 of 4)"),
        (np.array([[1.0, np.inf], [0, 1]]), "scene", "x.npy: scene contains NaN or Inf values (1 of 4)"),
        (np.zeros((0, 4)), "measurement", "x.npy: measurement array is empty (shape (0, 4))"),
        (np.array([[1.0, -0.5], [0, 1]]), "measurement", "x.npy: measurement contains negative values (min -0.5)"),
        (np.zeros((2, 4, 4)), "mask", "x.npy: mask is all zeros: nothing would be measured"),
        (np.full((2, 4, 4), 255, np.uint8), "mask",
         "x.npy: mask values must lie in [0, 1], found range [255, 255] (scale the mask to [0, 1])"),
        (np.full((2, 4), 300.0), "scene", "x.npy: scene values must lie in [0, 1] (or 0..255 for 8-bit data), "
                                          "found max 300"),
    ],
)
def test_value_errors(tmp_path, array, role, message):
    np.save(tmp_path / "x.npy", array)
    reader = {"measurement": read_measurement, "mask": read_mask, "scene": read_scene}[role]
    with pytest.raises(InputFileError) as e:
        reader(tmp_path / "x.npy")
    assert _err(e) == message


def test_object_arrays_are_never_unpickled(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(InputFileError) as e:
        read_measurement(tmp_path / "obj.npy")
    assert _err(e) == "obj.npy: measurement has data type object (pickled Python objects are never loaded)"
    np.savez(tmp_path / "obj.npz", meas=np.array([1, "x", None], dtype=object))
    with pytest.raises(InputFileError) as e:
        read_measurement(tmp_path / "obj.npz")
    assert _err(e) == "obj.npz: measurement has data type object (pickled Python objects are never loaded)"


def test_non_binary_float_mask_and_pair_check(tmp_path, data_dir):
    soft = np.random.default_rng(3).random((4, 8, 8)).astype(np.float32)
    np.save(tmp_path / "soft.npy", soft)
    np.testing.assert_array_equal(read_mask(tmp_path / "soft.npy"), soft)
    meas = read_measurement(data_dir / "real" / "cr10" / "meas_hand_cr_10.mat")
    mask_path = data_dir / "mask" / "quantized_sci_mask.mat"
    with pytest.raises(InputFileError) as e:
        check_pair(meas, read_mask(mask_path), mask_path=mask_path)
    assert _err(e) == ("meas_hand_cr_10.mat: measurement size 512x512 does not match the mask size 256x256 "
                       "of quantized_sci_mask.mat")
    check_pair(np.zeros((256, 256)), read_mask(mask_path))  # matching sizes pass
    assert issubclass(InputFileError, QSCIError)


# ---- writers ----------------------------------------------------------------------------------


def test_save_frames_round_trips(tmp_path):
    rng = np.random.default_rng(4)
    frames = rng.random((2, 3, 6, 5)).astype(np.float32)  # (N, T, H, W)
    path = save_frames(tmp_path / "r.npz", frames, psnr=np.array([30.5, 31.0]), method="gap-tv")
    with np.load(path, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["recon"], frames)
        assert str(z["method"]) == "gap-tv" and z["psnr"].tolist() == [30.5, 31.0]
    path = save_frames(tmp_path / "r.mat", frames, psnr=1.5)
    recon = scipy.io.loadmat(str(path))["recon"]
    assert recon.shape == (6, 5, 3, 2)  # MATLAB (H, W, T, N)
    np.testing.assert_array_equal(recon[:, :, 1, 0], frames[0, 1])
    path = save_frames(tmp_path / "one.mat", frames[1])
    np.testing.assert_allclose(read_scene(path), frames[1])  # key 'recon', (H, W, T) -> (T, H, W)
    folder = save_frames(tmp_path / "p.png", frames)
    assert folder == tmp_path / "p"
    assert sorted(p.name for p in folder.iterdir()) == [f"frame_{i:04d}.png" for i in range(6)]
    np.testing.assert_allclose(read_scene(folder), frames.reshape(6, 6, 5), atol=0.5 / 255 + 1e-6)
    path = save_frames(tmp_path / "r.tif", frames)
    np.testing.assert_array_equal(read_measurement(path).data, frames.reshape(6, 6, 5))
    with pytest.raises(QSCIError) as e:
        save_frames(tmp_path / "r.npz", frames, bad={"a": 1})
    assert str(e.value) == "metadata 'bad' is not a number, string or plain array"
    with pytest.raises(QSCIError) as e:
        save_frames(tmp_path / "r.jpg", frames)
    assert str(e.value) == "cannot save frames as '.jpg' (use one of .npz, .mat, .npy, .tif, .tiff, .png)"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_mp4_is_h264_even_sized_and_gif_fallback(tmp_path, monkeypatch):
    import cv2

    frames = np.random.default_rng(5).random((7, 15, 21)).astype(np.float32) * 1.4 - 0.2  # clipped for display
    out = write_video(tmp_path / "v.webm", frames, fps=8)
    assert out == tmp_path / "v.mp4"
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 7
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (22, 16)
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    cap.release()
    assert fourcc in ("avc1", "h264", "H264")
    import imageio_ffmpeg

    def no_ffmpeg():
        raise RuntimeError("no ffmpeg here")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_ffmpeg)
    gif = write_video(tmp_path / "w.mp4", frames, fps=4)
    assert gif == tmp_path / "w.gif" and gif.is_file()
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 7 and im.size == (22, 16)


def test_truncated_or_garbled_files_only_raise_input_file_errors(tmp_path):
    """Every prefix of a valid file of each format either reads or fails with InputFileError."""
    import h5py  # noqa: F401  (v7.3 writer below)
    import tifffile
    from PIL import Image

    rng = np.random.default_rng(7)
    frames = rng.random((3, 16, 12)).astype(np.float32)
    valid = {
        "a.npy": lambda p: np.save(p, frames),
        "a.npz": lambda p: np.savez_compressed(p, orig=frames),
        "a.mat": lambda p: scipy.io.savemat(p, {"orig": np.moveaxis(frames, 0, -1)}, do_compression=True),
        "b.mat": lambda p: _write_v73(p, orig=np.moveaxis(frames, 0, -1)),
        "a.png": lambda p: Image.fromarray((frames[0] * 255).astype(np.uint8)).save(p),
        "a.tif": lambda p: tifffile.imwrite(p, frames, photometric="minisblack"),
        "a.mp4": lambda p: write_video(p, frames),
    }
    for name, make in valid.items():
        good = tmp_path / name
        make(good)
        content = good.read_bytes()
        assert read_scene(good).shape[1:] == (16, 12), name
        for cut in (1, 7, 64, len(content) // 3, len(content) // 2, len(content) - 5):
            bad = tmp_path / f"cut{cut}_{name}"
            bad.write_bytes(content[:cut])
            try:
                read_scene(bad)
            except InputFileError as exc:
                assert str(exc).startswith(f"{bad.name}: ") and "\n" not in str(exc), str(exc)
        noisy = tmp_path / f"noise_{name}"
        noisy.write_bytes(rng.integers(0, 256, len(content), dtype=np.uint8).tobytes())
        with pytest.raises(InputFileError):
            read_scene(noisy)


def test_axis_rules_agree_across_formats(tmp_path):
    """One (T, H, W) stack stored MATLAB-style (v5, v7.3) and numpy-style reads back identically."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=12, deadline=None)
    @given(st.integers(1, 5), st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**31 - 1))
    def check(t, h, w, seed):
        stack = np.random.default_rng(seed).random((t, h, w)).astype(np.float32)
        matlab = np.moveaxis(stack, 0, -1)  # (H, W, T)
        scipy.io.savemat(tmp_path / "v5.mat", {"meas": matlab})
        _write_v73(tmp_path / "v73.mat", meas=matlab)
        np.save(tmp_path / "s.npy", stack)
        np.savez(tmp_path / "s.npz", meas=stack)
        for name in ("v5.mat", "v73.mat", "s.npy", "s.npz"):
            got = read_measurement(tmp_path / name).data
            assert got.shape == (t, h, w), (name, got.shape)
            np.testing.assert_allclose(got, stack, rtol=1e-6, err_msg=name)

    check()
