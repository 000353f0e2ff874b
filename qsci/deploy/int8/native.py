"""Fused passes of the int8 graph (`kernels.c`): built once with the system C compiler
(`qsci.native`), called through ctypes, or absent (then the eager torch passes run, with the
same values). `QSCI_NATIVE=0` turns them off.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import torch

from qsci import native

SOURCE = Path(__file__).with_name("kernels.c")
FLAGS = [*native.BASE_FLAGS, "-ffast-math", "-fno-finite-math-only"]
LANES = 16  # pixels per inner loop in the C source; thread slices are multiples of it
_STATUS: dict[str, str] = {}
_SWITCH = {"on": True, "bf16": True}


_P, _I, _F = native.PTR, native.I64, native.F32
_LEAKY = [_P, _P, _I, _I, _F, native.INT, _F, _F, _F]
_SUM = [_P, _P, _P, _P, _I, _I, *[_F] * 7]
_ADD = [_P, _P, _P, _I, _I, _F, _F, _F]
SIGNATURES = {
    "qsci_attend_planar": ([_P, _P, *[_I] * 6, _P, _P, _P, _P, _F, _P, _F, _F, _I, _I], native.INT),
    "qsci_leaky_codes": (_LEAKY, None), "qsci_leaky_codes_bf16": (_LEAKY, None),
    "qsci_sum_codes": (_SUM, None), "qsci_sum_codes_bf16": (_SUM, None),
    "qsci_add_codes": (_ADD, None), "qsci_add_codes_bf16": (_ADD, None),
    "qsci_row_codes": ([_P, _P, *[_I] * 5, _F, _F, _F], None),
}


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None (reason in `status()`)."""
    dll, _STATUS["reason"] = native.load(SOURCE, FLAGS, SIGNATURES)
    return dll


def set_enabled(on: bool) -> None:
    """Turn the fused kernels on or off for this process (benchmarks compare both in one run)."""
    _SWITCH["on"] = bool(on)


def active() -> bool:
    """True when the fused kernels are built and switched on."""
    return _SWITCH["on"] and library() is not None


def set_bf16_mids(on: bool) -> None:
    """Let the kernels feeding the C passes write bf16 (default) or fp32 (for comparisons)."""
    _SWITCH["bf16"] = bool(on)


def mid_dtype() -> torch.dtype:
    """What a conv whose output only a C pass reads writes: bf16 (half the bytes written and
    read; the C passes widen it exactly) when they are active, else fp32 for the torch passes."""
    return torch.bfloat16 if _SWITCH["bf16"] and active() else torch.float32


def status() -> str:
    """Why the kernel is or is not in use (for `qsci info`-style reports and tests)."""
    library()
    return _STATUS.get("reason", "")


def dense(x: torch.Tensor) -> bool:
    """True when x's elements fill its storage span in some standard layout (elementwise-safe)."""
    if x.is_contiguous():
        return True
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.ndim)
    return fmt is not None and x.is_contiguous(memory_format=fmt)


MID_DTYPES = (torch.float32, torch.bfloat16)  # what the elementwise passes read


def leaky_codes(x: torch.Tensor, slope: float | None, scale: float, zero_point: int,
                code_max: int) -> torch.Tensor:
    """uint8 `clamp(round(leaky(x) / scale) + zero_point, 0, code_max)` in one pass, layout kept
    (`slope=None`: no LeakyReLU). Needs a dense fp32 or bf16 x and 0 <= zero_point <= 255."""
    dll = library()
    if dll is None:
        raise RuntimeError(status())
    if x.dtype not in MID_DTYPES or not dense(x) or not 0 <= zero_point <= 255:
        raise ValueError("leaky_codes needs a dense float32/bfloat16 tensor and a zero point in 0..255")
    out = torch.empty_like(x, dtype=torch.uint8)  # same strides as x: elementwise over storage
    inv = _inverse(scale)
    fn = dll.qsci_leaky_codes if x.dtype == torch.float32 else dll.qsci_leaky_codes_bf16
    elementwise(x.numel(), lambda i, j: fn(
        x.data_ptr(), out.data_ptr(), i, j, float(slope or 0.0), int(slope is not None), inv,
        float(zero_point), float(code_max)))
    return out


def sum_codes(a: torch.Tensor, b: torch.Tensor | None, slope_a: float, first: tuple, second: tuple
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """`s = leaky(a) + b` (slope 1.0: no LeakyReLU; b None: nothing added) as the uint8 codes of
    two layers, each given as (scale, zero_point, code_max), in one pass; a and b dense, one
    layout, both fp32 or both bf16."""
    dll = library()
    if dll is None:
        raise RuntimeError(status())
    other = a if b is None else b
    if a.dtype not in MID_DTYPES or other.dtype != a.dtype or a.shape != other.shape \
            or a.stride() != other.stride() or not dense(a) or not all(0 <= q[1] <= 255 for q in (first, second)):
        raise ValueError("sum_codes needs two dense float32 (or two bfloat16) tensors of one layout and "
                         "zero points in 0..255")
    u1, u2 = torch.empty_like(a, dtype=torch.uint8), torch.empty_like(a, dtype=torch.uint8)
    q1 = (_inverse(first[0]), float(first[1]), float(first[2]))
    q2 = (_inverse(second[0]), float(second[1]), float(second[2]))
    fn = dll.qsci_sum_codes if a.dtype == torch.float32 else dll.qsci_sum_codes_bf16
    elementwise(a.numel(), lambda i, j: fn(
        a.data_ptr(), None if b is None else b.data_ptr(), u1.data_ptr(), u2.data_ptr(), i, j, float(slope_a),
        *q1, *q2))
    return u1, u2


def add_codes(s: torch.Tensor, y: torch.Tensor, scale: float, zero_point: int, code_max: int) -> torch.Tensor:
    """`s += y` in place and the uint8 codes of the new s, in one pass; s dense fp32, y fp32 or
    bf16, one layout."""
    dll = library()
    if dll is None:
        raise RuntimeError(status())
    if s.dtype != torch.float32 or y.dtype not in MID_DTYPES or s.shape != y.shape or s.stride() != y.stride() \
            or not dense(s) or not 0 <= zero_point <= 255:
        raise ValueError("add_codes needs a dense float32 s, a float32/bfloat16 y of its layout and a zero "
                         "point in 0..255")
    u = torch.empty_like(s, dtype=torch.uint8)
    inv = _inverse(scale)
    fn = dll.qsci_add_codes if y.dtype == torch.float32 else dll.qsci_add_codes_bf16
    elementwise(s.numel(), lambda i, j: fn(
        s.data_ptr(), y.data_ptr(), u.data_ptr(), i, j, inv, float(zero_point), float(code_max)))
    return u


def row_stride(x: torch.Tensor) -> int | None:
    """For a (B, C, T, H, W) channel slice of a channels-last tensor: the distance between its
    pixels' channel rows (its (B*T*H*W, C) rows are a strided view); None for other layouts."""
    if x.ndim != 5 or x.dtype != torch.float32 or x.stride(1) != 1:
        return None
    b, c, t, h, w = x.shape
    rs = x.stride(4)
    expected = (rs * w * h * t, 1, rs * w * h, rs * w, rs)
    ok = all(s == e or n == 1 for s, e, n in zip(x.stride(), expected, x.shape))
    return rs if ok and rs >= c else None


def row_codes(x: torch.Tensor, scale: float, zero_point: int, code_max: int,
              out: torch.Tensor | None = None) -> torch.Tensor:
    """Codes of a channels-last tensor or a channel slice of one (`row_stride` not None), in one
    pass, as (B*T*H*W, C) uint8 rows: a new dense tensor, or written into `out`, a (rows, C)
    column slice of a wider uint8 buffer (the codes of a channel concatenation)."""
    dll = library()
    rs = row_stride(x)
    if dll is None or rs is None or not 0 <= zero_point <= 255:
        raise ValueError("row_codes needs the C kernels, a (slice of a) channels-last float32 tensor "
                         "and a zero point in 0..255")
    b, c, t, h, w = x.shape
    n = b * t * h * w
    if out is None:
        out = torch.empty((n, c), dtype=torch.uint8)
    if out.dtype != torch.uint8 or tuple(out.shape) != (n, c) or out.stride(1) != 1:
        raise ValueError(f"row_codes: out must be ({n}, {c}) uint8 rows, got {tuple(out.shape)} {out.dtype}")
    inv = _inverse(scale)
    elementwise(n, lambda i, j: dll.qsci_row_codes(
        x.data_ptr(), out.data_ptr(), i, j, c, rs, out.stride(0), inv, float(zero_point), float(code_max)))
    return out


def _inverse(scale: float) -> float:
    """float32 1/scale, as torch's quantize_per_tensor computes it."""
    return float(torch.ones((), dtype=torch.float32) / torch.tensor(scale, dtype=torch.float32))


def elementwise(n: int, run_range) -> None:
    """run_range(begin, end) over [0, n) in slices of a multiple of 64 elements, one per thread."""
    workers = max(1, min(torch.get_num_threads(), n // 65536))
    per = -(-n // workers)  # ceil(n / workers) ...
    step = -(-per // 64) * 64  # ... rounded up to whole cache lines of floats
    native.parallel_map(lambda i: run_range(i, min(n, i + step)), list(range(0, n, step)), workers)


def attend_planar(codes: torch.Tensor, batch: int, t: int, heads: int, d: int, span: int,
                  params: dict) -> torch.Tensor:
    """qkv codes (batch*t*hw, 3*heads*d) uint8 -> proj input codes (batch*t*hw, heads*d) uint8.

    `params` holds float32 tensors `center` (3*inner), `logit`, `inv_pa`, `zp`, `factor` (heads)
    and floats `amax`, `out_zp`, `code_max`. Work is split over torch's thread count (ctypes
    drops the GIL during each call).
    """
    dll = library()
    if dll is None:
        raise RuntimeError(status())
    codes = codes.contiguous()
    rows, cols = codes.shape
    hw = rows // (batch * t)
    if cols != 3 * heads * d or hw * batch * t != rows:
        raise ValueError(f"qkv codes of shape {tuple(codes.shape)} do not fit batch={batch}, t={t}, "
                         f"heads={heads}, d={d}")
    out = torch.empty(rows, heads * d, dtype=torch.uint8)
    keep = [params[k].contiguous() for k in ("center", "logit", "inv_pa", "zp", "factor")]
    ptrs = [p.data_ptr() for p in keep]
    workers = max(1, min(torch.get_num_threads(), hw // (4 * LANES)))
    per = -(-hw // workers)
    step = -(-per // LANES) * LANES  # slices start on a lane boundary

    def run(p0: int) -> int:
        return dll.qsci_attend_planar(codes.data_ptr(), out.data_ptr(), batch, t, hw, heads, d, span,
                                      ptrs[0], ptrs[1], ptrs[2], ptrs[3], float(params["amax"]), ptrs[4],
                                      float(params["out_zp"]), float(params["code_max"]), p0,
                                      min(hw, p0 + step))

    starts = list(range(0, hw, step))
    codes_rc = native.parallel_map(run, starts, workers)
    if any(codes_rc):
        raise RuntimeError(f"fused attention kernel refused its arguments (code {max(codes_rc)}): "
                           f"t={t}, heads={heads}, d={d}")
    return out
