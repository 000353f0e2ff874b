"""Named inputs for the front ends: benchmark scenes, real-camera snapshots, embedded clips.

Everything becomes a `SceneInput` (measurements + mask + optional ground truth), so the app,
the CLI and evaluation treat a benchmark scene, an upload and a simulated clip the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qsci import data
from qsci.data import BENCHMARK_SCENES, EVAL_MASK
from qsci.errors import QSCIError

REAL_SCENES = tuple(
    f"real-{n}-cr{cr}" for cr in (10, 20, 30, 40, 50) for n in ("duomino", "hand", "pendulumBall", "waterBalloon")
)
REAL_MASK_NOTE = ("real-camera scenes need the authors' camera mask real_mask.mat, which is not in the public "
                  "data folder: it is downloaded on first use where there is network (python -m qsci fetch "
                  "real_mask), and without network these scenes cannot run")
EMBEDDED_MASK_SEED = 2024


@dataclass(frozen=True)
class SceneInfo:
    name: str
    kind: str  # "benchmark" | "real" | "embedded"
    available: bool
    description: str = ""
    missing: tuple[str, ...] = ()  # file names that are neither in the data folder nor in the cache

    @property
    def reason(self) -> str:
        """Why the missing files are missing and how they arrive ('' when nothing is missing)."""
        if self.available:
            return ""
        if "real_mask.mat" in self.missing:
            return REAL_MASK_NOTE
        return ("downloaded when you press Reconstruct where there is network (or `python -m qsci fetch --all`, "
                "or put the file into QSCI_DATA_DIR)")

    @property
    def status(self) -> str:
        """'on disk', or 'needs download: real_mask.mat' naming exactly the missing files."""
        return "on disk" if self.available else "needs download: " + ", ".join(self.missing)


@dataclass
class SceneInput:
    name: str
    kind: str
    meas: np.ndarray  # (N, H, W) float32
    mask: np.ndarray  # (T, H, W) float32
    gt: np.ndarray | None = None  # (N, T, H, W) float32 in [0, 1]
    info: dict = field(default_factory=dict)

    @property
    def cr(self) -> int:
        return int(self.mask.shape[0])


def _embedded_names() -> list[str]:
    from qsci.synthetic import list_embedded_scenes

    return list_embedded_scenes()


def _file_name(registry_name: str) -> str:
    return Path(data.get(registry_name).relpath).name


def list_scenes() -> list[SceneInfo]:
    """Every named scene, whether it loads right now without a download, and which files are missing."""
    scenes = []
    for s in BENCHMARK_SCENES:
        here = data.is_available(s)
        scenes.append(SceneInfo(s, "benchmark", here, f"benchmark scene {s} (grayscale, 256x256, CR 8)",
                                () if here else (_file_name(s),)))
    real_mask = data.is_available("real_mask")
    for s in REAL_SCENES:
        missing = tuple(_file_name(n) for n, here in ((s, data.is_available(s)), ("real_mask", real_mask)) if not here)
        scenes.append(SceneInfo(s, "real", not missing, f"real CACTI snapshot {s} (512x512)", missing))
    scenes += [SceneInfo(s, "embedded", True, "embedded clip (always available)") for s in _embedded_names()]
    return scenes


def split_groups(frames: np.ndarray, cr: int) -> np.ndarray:
    """(F, H, W) -> (F // cr, cr, H, W): consecutive groups of `cr` frames (spec protocol)."""
    n = frames.shape[0] // cr
    if n == 0:
        raise QSCIError(f"need at least {cr} frames for compression ratio {cr}, got {frames.shape[0]}")
    return np.ascontiguousarray(frames[: n * cr].reshape(n, cr, *frames.shape[1:]), dtype=np.float32)


def resolve_mask(mask: str | np.ndarray | Path, cr: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """A mask given as 'random', 'random:SEED', 'quantized_sci', a registry name, a file, or an array."""
    from qsci import io
    from qsci.physics import random_binary_mask  # torch: imported when a scene is simulated

    if isinstance(mask, np.ndarray):
        out = mask.astype(np.float32)
    elif str(mask) == "random" or str(mask).startswith("random:"):
        seed = int(str(mask).split(":", 1)[1]) if ":" in str(mask) else seed
        out = random_binary_mask(cr, h, w, seed)
    elif data.mask_name(str(mask)) == EVAL_MASK:
        out = data.load_mask(EVAL_MASK)
    elif Path(str(mask)).suffix:
        out = io.read_mask(str(mask))
    else:
        out = data.load_mask(str(mask), cr=cr)
    if out.shape[1:] != (h, w):
        raise QSCIError(f"mask size {out.shape[1:]} does not match the scene size {(h, w)}")
    if out.shape[0] != cr:
        raise QSCIError(f"mask has {out.shape[0]} frames but the compression ratio is {cr}")
    return out


def check_request_size(n_frames: int, h: int, w: int, cr: int, limits=None) -> None:
    """Refuse a clip or compression ratio beyond `qsci.io.Limits` before anything is allocated.

    Front ends should call this before *building* a clip (e.g. an embedded one of a requested size).
    """
    from qsci.io import DEFAULT_LIMITS
    from qsci.io.validate import check_declared_shape

    limits = limits or DEFAULT_LIMITS
    if not 1 <= int(cr) <= limits.max_cr:
        raise QSCIError(f"compression ratio {cr} is outside 1..{limits.max_cr}")
    check_declared_shape(None, (int(n_frames), int(h), int(w)), "scene", "THW", limits)


def simulate_scene(
    frames: np.ndarray,
    cr: int = 8,
    mask: str | np.ndarray = "random",
    seed: int = 0,
    read_noise_std: float = 0.0,
    shot_noise_photons: float | None = None,
    name: str = "custom",
    kind: str = "simulated",
) -> SceneInput:
    """Code a clip (F, H, W) into F // cr snapshots with a chosen mask and optional noise."""
    if np.ndim(frames) != 3:
        raise QSCIError(f"a clip must be (frames, H, W), got shape {np.shape(frames)}")
    check_request_size(*np.shape(frames), cr)  # before any copy of a huge array
    from qsci.physics import simulate_measurement  # torch: imported when a scene is simulated

    frames = np.asarray(frames, np.float32)
    gt = split_groups(frames, cr)
    m = resolve_mask(mask, cr, *frames.shape[1:], seed=seed)
    meas = np.stack([
        simulate_measurement(g, m, read_noise_std, shot_noise_photons, seed=seed + i) for i, g in enumerate(gt)
    ]).astype(np.float32)
    info = {"cr": cr, "size": list(frames.shape[1:]), "measurements": len(meas), "mask": str(mask) if isinstance(mask, str) else "array"}
    return SceneInput(name, kind, meas, m, gt, info)


def load_scene(name: str) -> SceneInput:
    """A named scene, simulated with the evaluation mask (benchmark), as recorded (real), or embedded."""
    if name in BENCHMARK_SCENES:
        orig, own_mask = data.load_benchmark(name)
        mask = data.load_mask(EVAL_MASK) if data.is_available(EVAL_MASK) else own_mask
        return simulate_scene(orig, cr=mask.shape[0], mask=mask, name=name, kind="benchmark")
    if name in REAL_SCENES:
        cr = int(name.rsplit("cr", 1)[1])
        meas = data.load_real_measurement(name)
        mask = data.load_mask("real_mask", cr=cr)
        return SceneInput(name, "real", meas, mask, None, {"cr": cr, "size": list(meas.shape[1:]), "measurements": len(meas)})
    if name in _embedded_names():
        from qsci.synthetic import make_embedded_scene

        clip = make_embedded_scene(name)
        return simulate_scene(clip, cr=8, mask=f"random:{EMBEDDED_MASK_SEED}", name=name, kind="embedded")
    known = ", ".join(s.name for s in list_scenes())
    raise QSCIError(f"unknown scene {name!r}; known: {known}")


def ground_truth_for(gt_path: str | Path, n_meas: int, mask: np.ndarray, first: int = 0,
                     partial: bool = False, frames: np.ndarray | None = None) -> np.ndarray:
    """(N, T, H, W) ground truth for measurements first..first+N-1 coded with `mask`, from a file.

    With `partial`, a file that covers only the first k >= 1 of those measurements gives (k, T, H, W)
    (the caller keeps those k measurements); otherwise too few frames are an error. `frames`: the
    file's frames when they were already read (not read again).
    """
    from qsci import io

    frames = io.read_scene(gt_path) if frames is None else frames
    name = Path(gt_path).name
    if frames.shape[1:] != mask.shape[1:]:
        raise QSCIError(f"{name}: ground-truth frames are {frames.shape[1:]}, the mask is {mask.shape[1:]}")
    t = mask.shape[0]
    start, need = first * t, (first + n_meas) * t
    if frames.shape[0] < need:
        covered = frames.shape[0] // t - first
        if not partial or covered < 1:
            which = f"measurement {first}" if n_meas == 1 else f"{n_meas} measurements from {first}"
            raise QSCIError(f"{name}: {frames.shape[0]} ground-truth frames, need {need} to cover {which} "
                            f"at CR {t} (frames {start}..{need - 1})")
        need = (first + covered) * t
    return split_groups(frames[start:need], t)


def scene_from_files(
    meas_path: str | Path, mask_path: str | Path, gt_path: str | Path | None = None, real_scaling: bool = False,
    scale: str = "auto", measurement: int | None = None, read: dict | None = None,
) -> SceneInput:
    """An uploaded measurement + mask (+ ground truth), validated with file-naming errors.

    The measurement's value scale follows `qsci.io.inspect.scale_measurement` (`real_scaling`
    means `scale="real"`); `measurement` keeps one measurement of a file holding several. Ground
    truth may cover fewer measurements than the file holds: the covered ones are kept, with a
    notice. `info["notices"]` says what was done to the input, `info["warnings"]` what looks wrong.
    `read` holds files already read by the caller ({"measurement": Measurement, "mask": array,
    "ground truth": frames}), so that an upload is parsed once; the others are read here.
    """
    from qsci import io
    from qsci.io.inspect import input_warnings, scale_measurement

    read = read or {}
    mask = read["mask"] if "mask" in read else io.read_mask(mask_path)
    m = read["measurement"] if "measurement" in read else io.read_measurement(meas_path)
    io.check_pair(m.data, mask, meas_path=meas_path, mask_path=mask_path)
    n_file = int(m.data.shape[0])
    meas = m.data
    first = 0
    if measurement is not None:
        k = int(measurement)
        if not 0 <= k < n_file:
            raise QSCIError(f"{Path(meas_path).name}: measurement index {k} is out of range: the file holds "
                            f"{n_file} measurement(s) (0..{n_file - 1})")
        meas, first = meas[k:k + 1], k
    meas, notices = scale_measurement(meas, mask, "real" if real_scaling else scale, where=meas_path)
    gt = None
    if gt_path is not None:
        gt = ground_truth_for(gt_path, meas.shape[0], mask, first=first, partial=True,
                              frames=read.get("ground truth"))
        if gt.shape[0] < meas.shape[0]:
            kept = (f"measurement {first} is" if gt.shape[0] == 1
                    else f"measurements {first}..{first + gt.shape[0] - 1} are")
            notices.append(f"the ground truth ({Path(gt_path).name}) covers {gt.shape[0]} of the {meas.shape[0]} "
                           f"measurements, so only {kept} reconstructed and scored")
            meas = meas[: gt.shape[0]]
    info = {"cr": int(mask.shape[0]), "size": list(mask.shape[1:]), "measurements": int(meas.shape[0]),
            "measurements_in_file": n_file, "axis_order": m.axis_order, "notices": notices,
            "warnings": input_warnings(meas, mask)}
    if measurement is not None:
        info["measurement"] = first
    name = Path(meas_path).name + (f"[{first}]" if measurement is not None else "")
    return SceneInput(name, "upload", np.ascontiguousarray(meas, np.float32), mask, gt, info)
