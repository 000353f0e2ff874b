"""Parameters, MACs, BOPs and stored size of a network for one input size.

Counted with forward hooks on a real forward pass (so every conv, linear and attention matmul
that actually runs is counted) at a small frame size, then scaled: every layer of these networks
works per pixel at full or half resolution, so MACs are exactly proportional to H*W for even
H, W. BOPs = MACs x weight bits x activation bits (32 x 32 for float layers; the attention
matmuls q.k and attn.v use their two activation bit widths).
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn

from qsci.errors import QSCIError
from qsci.models import ModelConfig, build_model  # layer 2: the networks counted here
from qsci.models.blocks import TSAB
from qsci.quant.lsq import QLayerMixin

FP_BITS = 32
_PROBE_HW = 4  # frame size of the counting pass; counts scale by (H*W) / 16


@dataclass
class Complexity:
    params: int
    macs: int
    bops: int
    size_bytes: int
    theoretical_speedup: float
    layers: list[dict] = field(default_factory=list, repr=False)

    def to_dict(self, per_layer: bool = False) -> dict:
        d = asdict(self)
        if not per_layer:
            d.pop("layers")
        return d


def parse_size(text: str) -> tuple[int, int, int]:
    """'256x256x8' (H x W x T) -> (T, H, W)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise QSCIError(f"size must look like HxWxT (e.g. 256x256x8), got {text!r}")
    h, w, t = (int(v) for v in m.groups())
    if min(h, w, t) < 1 or h % 2 or w % 2:
        raise QSCIError(f"size {text!r}: all sizes must be positive and height/width even")
    return t, h, w


def _act_bits(module: nn.Module, name: str) -> int:
    q = getattr(module, name, None)
    return int(q.bits) if q is not None else FP_BITS


def _layer_record(name: str, module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> list[dict]:
    """MAC records (batch 1) of one hooked module call."""
    if isinstance(module, nn.Conv3d):  # batch 1: every output value costs Cin/groups * k MACs
        macs = out.numel() * math.prod(module.kernel_size) * module.in_channels // module.groups
    elif isinstance(module, nn.Linear):
        macs = out.numel() * module.in_features
    else:  # TSAB: x (B, g, T, H, W); q.k and attn.v each cost H*W*T*T*(g/2) MACs per sample
        _, g, t, h, w = inp.shape
        each = h * w * t * t * module.inner
        return [
            {"name": f"{name}.qk", "macs": each, "w_bits": _act_bits(module, "q_act"), "a_bits": _act_bits(module, "k_act")},
            {"name": f"{name}.av", "macs": each, "w_bits": _act_bits(module, "attn_act"), "a_bits": _act_bits(module, "v_act")},
        ]
    quant = isinstance(module, QLayerMixin)
    return [{"name": name, "macs": int(macs), "w_bits": module.bits if quant else FP_BITS,
             "a_bits": module.act.bits if quant else FP_BITS}]


def _count_macs(model: nn.Module, t: int) -> list[dict]:
    """Hooked forward pass of a copy (quantizer initialisation must not touch `model`)."""
    probe = copy.deepcopy(model).eval()
    records: list[dict] = []
    hooks = []
    for name, m in probe.named_modules():
        if isinstance(m, (nn.Conv3d, nn.Linear, TSAB)):
            hooks.append(m.register_forward_hook(
                lambda mod, i, o, n=name: records.extend(_layer_record(n, mod, i[0], o))))
    with torch.no_grad():
        probe(torch.rand(1, 1, t, _PROBE_HW, _PROBE_HW))
    for h in hooks:
        h.remove()
    return records


def _size_bytes(model: nn.Module) -> int:
    """Stored size: quantized weights at their bit width, every other state-dict entry at 32 bits."""
    quant_weights = {f"{n}.weight".lstrip("."): m.bits for n, m in model.named_modules()
                     if isinstance(m, QLayerMixin)}
    total_bits = sum(v.numel() * quant_weights.get(k, FP_BITS) for k, v in model.state_dict().items())
    return math.ceil(total_bits / 8)


def _fp_reference(model: nn.Module) -> nn.Module | None:
    cfg = getattr(model, "config", None)
    if cfg is None or cfg.bits == FP_BITS:
        return None
    return build_model(ModelConfig.from_dict({**cfg.to_dict(), "bits": FP_BITS}))


def count(model: nn.Module, size: tuple[int, int, int] | str = (8, 256, 256)) -> Complexity:
    """Complexity of `model` for one input of size (T, H, W) (or 'HxWxT'), batch 1."""
    t, h, w = parse_size(size) if isinstance(size, str) else size
    if h % 2 or w % 2 or min(t, h, w) < 1:
        raise QSCIError(f"size (T, H, W) = {(t, h, w)}: H and W must be even and all positive")
    scale_num, scale_den = h * w, _PROBE_HW * _PROBE_HW
    layers = _count_macs(model, t)
    for r in layers:
        r["macs"] = r["macs"] * scale_num // scale_den
        r["bops"] = r["macs"] * r["w_bits"] * r["a_bits"]
    macs = sum(r["macs"] for r in layers)
    bops = sum(r["bops"] for r in layers)
    ref = _fp_reference(model)
    ref_bops = bops if ref is None else sum(r["macs"] for r in _count_macs(ref, t)) * scale_num // scale_den * FP_BITS**2
    return Complexity(
        params=sum(p.numel() for p in model.parameters()),
        macs=macs, bops=bops, size_bytes=_size_bytes(model),
        theoretical_speedup=ref_bops / bops if bops else float("nan"),
        layers=layers,
    )
