"""Compact inference checkpoints: quantized weights stored at their bit width.

A QAT checkpoint keeps every weight as fp32 although a b-bit layer only needs b bits per weight.
`pack_state_dict(model)` stores each QConv3d / QLinear weight as its integer codes bit-packed into
uint8 (8 / b codes per byte for b = 1, 2, 4, 8; a continuous bit stream for 3, 5, 6, 7), next to
the step `alpha`; every other entry (biases, activation steps and zero points, shifts, any float
layer) stays as it is, plus the model's config dict. The result holds only tensors and
primitives, so `torch.save` / `torch.load(weights_only=True)` round-trip it, and
`unpack_into(model, packed)` restores weights `code * alpha` that fake-quantize to exactly the
same integers, so outputs are identical. Files are read by `qsci.deploy.weights`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from qsci.errors import QSCIError
from qsci.quant.lsq import QConv3d, QLinear, signed_range

FORMAT = "qsci-packed-v1"
_BIT_WEIGHTS = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)


def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Unsigned codes < 2^bits (any shape) -> uint8 bit stream, LSB first, ceil(n * bits / 8) bytes."""
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    flat = codes.reshape(-1).to(torch.uint8)
    if bits == 8:
        return flat.clone()
    n = flat.numel()
    pad = (-n) % 8  # 8 codes always fill a whole number (bits) of bytes
    flat = torch.cat([flat, flat.new_zeros(pad)])
    planes = (flat.unsqueeze(1) >> torch.arange(bits, dtype=torch.uint8)) & 1  # (n', bits)
    stream = planes.reshape(-1, 8)  # 8 consecutive bits per byte
    return (stream * _BIT_WEIGHTS).sum(dim=1, dtype=torch.uint8)[: (n * bits + 7) // 8]


def unpack_bits(data: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """Inverse of pack_bits: the first `count` codes as uint8 (1-D)."""
    data = data.reshape(-1).to(torch.uint8)
    if bits == 8:
        return data[:count].clone()
    pad = (-data.numel()) % bits
    data = torch.cat([data, data.new_zeros(pad)])
    stream = (data.unsqueeze(1) >> torch.arange(8, dtype=torch.uint8)) & 1  # (bytes, 8)
    planes = stream.reshape(-1, bits)  # (codes, bits)
    weights = _BIT_WEIGHTS[:bits]
    return (planes * weights).sum(dim=1, dtype=torch.uint8)[:count]


def _config_dict(model: nn.Module, config: Any) -> dict | None:
    cfg = config if config is not None else getattr(model, "config", None)
    if cfg is None:
        return None
    if dataclasses.is_dataclass(cfg):
        cfg = dataclasses.asdict(cfg)
    if not isinstance(cfg, dict):
        raise QSCIError(f"model config must be a dict or dataclass, got {type(cfg).__name__}")
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}


def _quant_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if isinstance(m, (QConv3d, QLinear))}


def _flatten(tensors: dict[str, torch.Tensor]) -> dict:
    """Many small tensors -> one flat tensor per dtype plus an index (one zip entry, not hundreds)."""
    index: list[list] = []
    chunks: dict[str, list[torch.Tensor]] = {}
    for name, t in tensors.items():
        key = str(t.dtype).removeprefix("torch.")
        index.append([name, key, list(t.shape)])
        chunks.setdefault(key, []).append(t.detach().reshape(-1).cpu())
    return {"index": index, "data": {k: torch.cat(v) for k, v in chunks.items()}}


def _unflatten(flat: dict) -> dict[str, torch.Tensor]:
    offsets = dict.fromkeys(flat["data"], 0)
    out = {}
    for name, key, shape in flat["index"]:
        n = 1
        for s in shape:
            n *= s
        start = offsets[key]
        out[name] = flat["data"][key][start:start + n].reshape(shape).clone()
        offsets[key] = start + n
    return out


def pack_state_dict(model: nn.Module, config: Any = None) -> dict:
    """The model's weights in packed form (see module docstring); only tensors and primitives.

    {"format", "config", "qweights": {"index": [[layer, bits, shape, nbytes]], "codes": uint8},
    "tensors": {"index": [[name, dtype, shape]], "data": {dtype: flat tensor}}}.
    """
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    q_index: list[list] = []
    streams: list[torch.Tensor] = []
    for name, layer in _quant_layers(model).items():
        if float(layer.init_state) == 0:
            raise QSCIError(f"{name}: weight step is not initialised, nothing to pack")
        if layer.bits > 8:
            continue  # stays float
        ints, _ = layer.int_weight()
        qn, _ = signed_range(layer.bits)
        codes = pack_bits((ints.to(torch.int16) - qn).to(torch.uint8), layer.bits)  # 0 .. 2^b - 1
        q_index.append([name, int(layer.bits), list(ints.shape), int(codes.numel())])
        streams.append(codes)
        del state[(f"{name}." if name else "") + "weight"]  # its step `alpha` stays in `state`
    codes_all = torch.cat(streams) if streams else torch.zeros(0, dtype=torch.uint8)
    return {"format": FORMAT, "config": _config_dict(model, config),
            "qweights": {"index": q_index, "codes": codes_all}, "tensors": _flatten(state)}


def unpack_state_dict(packed: dict) -> dict[str, torch.Tensor]:
    """A plain state dict (float weights = code * step) from a packed dict."""
    if not isinstance(packed, dict) or packed.get("format") != FORMAT:
        raise QSCIError(f"not a packed Q-SCI checkpoint (expected format {FORMAT!r})")
    state = _unflatten(packed["tensors"])
    codes_all, start = packed["qweights"]["codes"], 0
    for name, bits, shape, nbytes in packed["qweights"]["index"]:
        prefix = f"{name}." if name else ""
        count = 1
        for s in shape:
            count *= s
        qn, _ = signed_range(bits)
        ints = unpack_bits(codes_all[start:start + nbytes], bits, count).to(torch.float32) + qn
        start += nbytes
        alpha = state[prefix + "alpha"].float()
        state[prefix + "weight"] = ints.reshape(shape) * alpha.reshape([-1] + [1] * (len(shape) - 1))
    return state


def unpack_into(model: nn.Module, packed: dict) -> nn.Module:
    """Load a packed dict into a model of the same architecture (strict); returns the model."""
    state = unpack_state_dict(packed)
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if wrong:
        raise QSCIError(f"packed checkpoint does not fit this model: {len(wrong)} entries differ in "
                        f"shape (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)} vs {tuple(own[wrong[0]].shape)})")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise QSCIError(
            f"packed checkpoint does not fit this model: {len(missing)} missing entries "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})")
    return model


def save_packed(model: nn.Module, path: str | Path, config: Any = None) -> Path:
    """torch.save the packed form of `model`; returns the path."""
    path = Path(path)
    torch.save(pack_state_dict(model, config), path)
    return path
