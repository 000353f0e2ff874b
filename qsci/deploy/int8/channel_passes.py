"""Compiled passes of the per-channel layers (the authors' files; `perchannel.c`).

Their activation steps are folded into three int8 weight terms per layer (`fold.py`), so each
layer quantizes its input per channel, runs one kernel with 3x the output channels and adds the
three slices; its attention quantizes q/k/v per channel. In eager torch these passes were about
half of an S 4-bit call. Here each is one pass over channel rows, with torch's arithmetic (the
same output bit for bit), or None/False where it does not apply (then the torch ops run). Built
without fast-math; switched with the int8 kernels (`native.set_enabled`, `QSCI_NATIVE=0`).
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import torch

from qsci import native
from qsci.deploy.int8 import native as kernels

SOURCE = Path(__file__).with_name("perchannel.c")
FLAGS = [*native.BASE_FLAGS, "-fno-math-errno", "-ffp-contract=off"]  # torch's float order: no fast-math
_STATUS: dict[str, str] = {}


SIGNATURES = {
    "qsci_channel_codes": ([native.PTR, native.PTR, *[native.I64] * 3, *[native.PTR] * 4, native.INT], None),
    "qsci_sum_terms": ([native.PTR, native.PTR, *[native.I64] * 4], None),
    "qsci_channel_fake_quant": ([native.PTR, *[native.I64] * 3, *[native.PTR] * 4], None),
}


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The per-channel layers' passes (`perchannel.c`), or None (no compiler, QSCI_NATIVE=0)."""
    dll, _STATUS["reason"] = native.load(SOURCE, FLAGS, SIGNATURES)
    return dll


def _channel_rows(x: torch.Tensor) -> bool:
    """x holds whole channel rows: a channels-last 5-D or a contiguous 2-D float32 tensor."""
    if x.dtype != torch.float32:
        return False
    return x.is_contiguous() if x.ndim == 2 else x.ndim == 5 and x.is_contiguous(memory_format=torch.channels_last_3d)


def channel_codes_apply(x: torch.Tensor, axis: int) -> bool:
    """True when `channel_codes` can quantize x along `axis` (its channel rows, kernels active)."""
    return kernels.active() and _channel_rows(x) and axis % x.ndim == 1 and library() is not None


def channel_params(step: torch.Tensor, offset: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                   multiply: bool) -> dict:
    """`channel_codes`'s float32 arrays: multiply (torch.quantize_per_channel's arithmetic: round(x
    times a float 1/step plus the offset)) or divide (round(x / float step), then + offset)."""
    s = step.float()
    return {"v": (torch.ones_like(s) / s) if multiply else s, "offset": offset.float(), "lo": lo.float(),
            "hi": hi.float(), "multiply": bool(multiply)}


def channel_codes(x: torch.Tensor, params: dict) -> torch.Tensor:
    """Per-channel uint8 codes `clamp(rint(x / step_c) + offset_c, lo_c, hi_c)` of a per-channel layer's
    input, one pass, layout kept (`channel_params` says how the division rounds)."""
    dll = library()
    c = x.shape[1]
    out = torch.empty_like(x, dtype=torch.uint8)
    keep = [params[k].contiguous() for k in ("v", "offset", "lo", "hi")]
    ptrs = [t.data_ptr() for t in keep]
    kernels.elementwise(x.numel() // c, lambda i, j: dll.qsci_channel_codes(
        x.data_ptr(), out.data_ptr(), i, j, c, *ptrs, int(params["multiply"])))
    return out


def channel_fake_quant_(x: torch.Tensor, scale: torch.Tensor, lo8: torch.Tensor, hi8: torch.Tensor) -> torch.Tensor | None:
    """`codes.fake_quant_via_codes(x, 1, scale, lo8, hi8)` in place on (rows, C) float32 rows, one pass
    with torch's arithmetic (the same values); None where it does not apply."""
    dll = library()
    if dll is None or not kernels.active() or x.ndim != 2 or not _channel_rows(x):
        return None
    c = x.shape[1]
    s = scale.double().reshape(-1).contiguous()
    keep = [torch.ones(c, dtype=torch.float32) / s.float(), s, lo8.float().reshape(-1).contiguous(),
            hi8.float().reshape(-1).contiguous()]
    kernels.elementwise(x.shape[0], lambda i, j: dll.qsci_channel_fake_quant(x.data_ptr(), i, j, c, *[t.data_ptr() for t in keep]))
    return x


def sum_terms(y: torch.Tensor, terms: int) -> torch.Tensor | None:
    """The sum of a folded layer's `terms` output slices along its channel rows, ((t0 + t1) + t2) as
    torch adds them, in one pass; None where it does not apply (layout, kernels off)."""
    dll = library()
    if dll is None or not kernels.active() or not _channel_rows(y) or y.shape[1] % terms:
        return None
    o = y.shape[1] // terms
    shape = (y.shape[0], o, *y.shape[2:])
    out = torch.empty(shape, dtype=torch.float32) if y.ndim == 2 else \
        torch.empty(shape, dtype=torch.float32, memory_format=torch.channels_last_3d)
    kernels.elementwise(y.numel() // y.shape[1], lambda i, j: dll.qsci_sum_terms(y.data_ptr(), out.data_ptr(), i, j, o, terms))
    return out


def status() -> str:
    library()
    return _STATUS.get("reason", "")
