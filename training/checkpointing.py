"""Atomic checkpoints that load with `torch.load(weights_only=True)`.

A checkpoint holds only tensors and plain containers: the model state dict
(`model_state_dict`) and its `ModelConfig` as a dict (`config`; loading rebuilds the exact model,
the same two keys as `qsci.models.checkpoints.save_model`), the optimizer state, the step, samples seen,
the resolved training config, and the RNG states of python, numpy, torch and CUDA (as tensors or
lists). It is written to a temporary file and moved into place with `os.replace`, so a crash or
a kill in the middle never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from qsci.deploy.weights import TRAINING_FORMAT, read_weights
from qsci.errors import InputFileError

FORMAT = TRAINING_FORMAT  # how the weights loader recognises a training state


def rng_state() -> dict:
    """RNG states of every generator the loop touches, in weights_only-safe form."""
    py = random.getstate()  # (version, tuple of 625 ints, gauss_next)
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        cuda = [s.cpu() for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def atomic_save(obj: dict, path: str | Path) -> Path:
    """torch.save to `<path>.tmp`, fsync, then os.replace: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def save_checkpoint(path, *, model, model_config: dict, optimizer, step: int, samples: int,
                    train_config: dict, extra: dict | None = None) -> Path:
    """Everything needed to continue the run bit-for-bit (rank 0 calls this)."""
    raw = getattr(model, "module", model)  # unwrap DDP
    state = {
        "format": FORMAT,
        # the two keys qsci.deploy.weights.load_model reads: `python -m qsci evaluate
        # --checkpoint <out>/ckpt.pt` and the app load a training checkpoint as it is
        "config": model_config,
        "model_state_dict": {k: v.detach().cpu() for k, v in raw.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "step": int(step),
        "samples": int(samples),
        "train_config": train_config,
        "rng": rng_state(),
    }
    if extra:
        state.update(extra)
    return atomic_save(state, path)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """A training checkpoint, or a plain model file holding a state dict plus its config.

    Read by the one weights loader (`qsci.deploy.weights.read_weights`: weights only, one error
    vocabulary); the whole dict comes back because resuming needs the optimizer and RNG states.
    """
    path = Path(path)
    ckpt = read_weights(path, map_location)
    if not isinstance(ckpt, dict):
        raise InputFileError(path, "checkpoint is not a dict")
    if "model_state_dict" not in ckpt:
        if isinstance(ckpt.get("state_dict"), dict):
            ckpt = {**ckpt, "model_state_dict": ckpt["state_dict"]}
        elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            ckpt = {"model_state_dict": ckpt}  # a bare state dict
        else:
            raise InputFileError(path, "no model weights in this checkpoint")
    return ckpt


def strip_ddp_prefix(sd: dict) -> dict:
    """State dicts saved from a DDP-wrapped model carry a `module.` prefix; drop it."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return sd
