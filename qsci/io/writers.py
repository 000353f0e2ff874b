"""Writers for reconstructions: data files by extension, and a browser-playable video.

`save_frames` layouts:
- `.npz`: compressed, key `recon` = frames as given ((T, H, W) or (N, T, H, W) float32), plus
  metadata as plain arrays (no pickled objects).
- `.mat` (v5): key `recon` stored MATLAB-style (H, W, T) or (H, W, T, N), plus metadata.
- `.npy`: the frames as given; no metadata.
- `.tif`/`.tiff`: one float32 page per frame (lossless), measurement-major for 4-D input.
- `.png`: a FOLDER named after the path without its suffix: `out.png` -> `out/frame_0000.png`,
  `out/frame_0001.png`, ... (8-bit, clipped to [0, 1] for display; measurement-major for 4-D
  input); `read_scene("out")` reads it back in order.
`save_frames` returns one path: the file written, or the folder for `.png`.
Single-file outputs are written to a temporary file in the same folder and renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from qsci.errors import QSCIError

SAVE_EXTS = (".npz", ".mat", ".npy", ".tif", ".tiff", ".png")
_UMASK = os.umask(0o022)  # read the process umask once (at import, before threads) and put it back
os.umask(_UMASK)


def _frames_array(frames) -> np.ndarray:
    arr = np.asarray(frames.detach().cpu() if hasattr(frames, "detach") else frames, dtype=np.float32)
    if arr.ndim not in (3, 4) or 0 in arr.shape:
        raise QSCIError(f"frames must be (T, H, W) or (N, T, H, W), got shape {arr.shape}")
    return arr


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """[0, 1] floats to 8 bits for display (reconstructions overshoot a little): NaN as 0, +-Inf
    as 1/0, clipped, rounded half up. The one conversion: files, videos and the app's pictures."""
    arr = np.nan_to_num(np.asarray(arr, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _meta_arrays(meta: dict) -> dict[str, np.ndarray]:
    out = {}
    for key, value in meta.items():
        if key == "recon" or not key.isidentifier():
            raise QSCIError(f"metadata key '{key}' is not allowed")
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise QSCIError(f"metadata '{key}' is not a number, string or plain array")
        out[key] = arr
    return out


def _atomic_write(path: Path, write) -> Path:
    """Call `write(tmp_path)` then rename over `path`, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are ordinary files (0644 by default)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_frames(path: str | os.PathLike, frames, **meta) -> Path:
    """Save frames by extension (see module doc); returns the file (or PNG folder) written."""
    path = Path(path)
    arr = _frames_array(frames)
    ext = path.suffix.lower()
    if ext == ".npz":
        arrays = _meta_arrays(meta)

        def write_npz(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, recon=arr, **arrays)

        return _atomic_write(path, write_npz)
    if ext == ".mat":
        import scipy.io

        matlab = np.moveaxis(arr, -3, -1)  # (.., T, H, W) -> (.., H, W, T)
        if matlab.ndim == 4:
            matlab = np.moveaxis(matlab, 0, -1)  # (N, H, W, T) -> (H, W, T, N)
        arrays = _meta_arrays(meta)
        return _atomic_write(path, lambda tmp: scipy.io.savemat(tmp, {"recon": matlab, **arrays}, do_compression=True))
    if meta and ext != ".npz":
        raise QSCIError(f"metadata cannot be stored in a {ext} file; use .npz or .mat")
    if ext == ".npy":
        def write_npy(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)

        return _atomic_write(path, write_npy)
    flat = arr.reshape(-1, *arr.shape[-2:])
    if ext in (".tif", ".tiff"):
        import tifffile

        return _atomic_write(path, lambda tmp: tifffile.imwrite(tmp, flat, photometric="minisblack"))
    if ext == ".png":
        from PIL import Image

        folder = path.with_suffix("")
        if folder.exists() and not folder.is_dir():
            raise QSCIError(f"cannot write PNG frames into {folder}: a file of that name exists")
        for i, frame in enumerate(to_uint8(flat)):
            target = folder / f"frame_{i:04d}.png"
            _atomic_write(target, lambda tmp, f=frame: Image.fromarray(f).save(tmp, format="PNG"))
        return folder
    raise QSCIError(f"cannot save frames as '{path.suffix}' (use one of {', '.join(SAVE_EXTS)})")


def _even_frames(arr: np.ndarray) -> np.ndarray:
    """(F, H, W) uint8 padded by edge replication to even H and W (yuv420p needs them)."""
    flat = to_uint8(arr.reshape(-1, *arr.shape[-2:]))
    h, w = flat.shape[1:]
    return np.pad(flat, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    import imageio_ffmpeg

    imageio_ffmpeg.get_ffmpeg_exe()  # raises when no ffmpeg is bundled or installed
    h, w = frames.shape[1:]

    def write(tmp: Path) -> None:
        gen = imageio_ffmpeg.write_frames(
            str(tmp), (w, h), pix_fmt_in="gray", pix_fmt_out="yuv420p", fps=fps, codec="libx264",
            macro_block_size=1, ffmpeg_log_level="error", output_params=["-movflags", "+faststart"],
        )
        gen.send(None)
        for frame in frames:
            gen.send(np.ascontiguousarray(frame))
        gen.close()

    _atomic_write(path, write)


def _write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    duration = max(int(round(1000 / fps)), 20)
    _atomic_write(path, lambda tmp: images[0].save(
        tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0))


def write_video(path: str | os.PathLike, frames, fps: float = 8) -> Path:
    """H.264 MP4 (yuv420p, even size, faststart) for browsers; GIF when ffmpeg is unavailable.

    Returns the path actually written (the suffix becomes `.mp4` or `.gif`).
    """
    if not fps or fps <= 0:
        raise QSCIError(f"fps must be positive, got {fps}")
    even = _even_frames(_frames_array(frames))
    path = Path(path)
    if path.suffix.lower() != ".gif":
        mp4 = path.with_suffix(".mp4")
        try:
            _write_mp4(mp4, even, fps)
            return mp4
        except Exception:  # no usable ffmpeg: fall back to a GIF, which every browser plays
            pass
    gif = path.with_suffix(".gif")
    _write_gif(gif, even, fps)
    return gif
