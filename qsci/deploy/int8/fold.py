"""A layer's quantizers as integer-kernel parameters; per-channel steps folded into the weights.

Per-channel steps (the authors' checkpoints) are folded into the weights (`fold_per_channel`):
the kernel gets the integer codes with step 1 and weights `Wint * a_c * aw_o`, written exactly
(to float precision) as three int8 terms run in one call.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from qsci.errors import QSCIError
from qsci.quant.lsq import ActQuantizer


def _check_layer(layer: nn.Module, name: str) -> None:
    if float(layer.act.init_state) == 0 or float(layer.init_state) == 0:
        raise QSCIError(f"{name}: quantizer steps are not initialised (calibrate or load weights first)")
    if layer.act.bits > 8 or layer.bits > 8:
        raise QSCIError(f"{name}: {max(layer.act.bits, layer.bits)}-bit layers do not fit int8 kernels")


def _act_params(layer: nn.Module, name: str) -> tuple[float, int, int]:
    """(step, kernel zero point, largest code) of a layer's per-tensor input quantizer."""
    act: ActQuantizer = layer.act
    _check_layer(layer, name)
    step, zp, qmin, qmax = act.quant_params()
    if step.numel() != 1 and not (bool((step == step[0]).all()) and bool((zp == zp[0]).all())):
        raise QSCIError(f"{name}: per-channel activation steps need fold_per_channel()")
    return float(step.reshape(-1)[0]), int(zp.reshape(-1)[0]) - qmin, qmax - qmin


def requantize_per_output(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 q, scale (O,)) with w ~ q * scale[o]; scale = max|w_o| / 127 (1 for an all-zero row)."""
    peak = w.abs().reshape(w.shape[0], -1).amax(dim=1)
    scale = torch.where(peak > 0, peak / 127, torch.ones_like(peak))
    shape = [-1] + [1] * (w.ndim - 1)
    q = (w / scale.reshape(shape)).round().clamp(-127, 127)
    return q.to(torch.int8), scale


def split_int8_terms(w: torch.Tensor, terms: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """w (O, ...) float64 as a sum of `terms` int8 tensors with per-row scales.

    Returns (q (terms*O, ...) int8, scale (terms*O,)): w ~ sum_i q_i * scale_i, term i
    re-quantizing what the earlier terms left. Each term shrinks the error ~250x: one term leaves
    up to 1/254 of the row's largest |w|, three terms ~1e-7 of it (float32 precision).
    """
    shape = [-1] + [1] * (w.ndim - 1)
    qs, ss = [], []
    rest = w.double()
    for _ in range(max(1, int(terms))):
        q, s = requantize_per_output(rest)
        qs.append(q)
        ss.append(s)
        rest = rest - q.double() * s.reshape(shape)
    return torch.cat(qs), torch.cat(ss)


def fold_per_channel(layer: nn.Module, name: str = "layer", terms: int = 3) -> dict:
    """Integer-kernel parameters of a layer whose input quantizer has per-channel steps.

    Fake-quant computes `y_o = b_o + sum_c W_oc (k_c - zr_c) a_c` with W_oc = Wint_oc * aw_o and
    input codes `k_c = clamp(round(x_c / a_c) + zr_c, qmin, qmax)`. The per-channel step a_c is
    folded into column c of the weights, `W'_oc = Wint_oc aw_o a_c`, and W' is written as a sum
    of `terms` int8 tensors with per-output-channel scales (`split_int8_terms`), run as one
    kernel call with terms*O output channels whose slices are summed. Three terms reproduce W'
    to float32 precision (the fold is then exact up to float rounding); one term is the plain
    int8 re-quantization, whose ~1e-3 relative weight error flips codes that cascade through a
    low-bit network (measured in docs/int8.md).

    The kernel input is the exact integer `u_c = k_c - zr_c + Z` with one shift Z for all
    channels (kernel input step 1, zero point Z, so zero padding stays an exact 0): route
    "shift". When those codes do not fit 0..255 (8-bit codes with differing zero points), the
    codes are `k_c - qmin`, the kernel zero point is the median of the per-channel ones and the
    small rest goes into the bias, plus an exact correction of border taps for padded convs:
    route "bias".
    """
    _check_layer(layer, name)
    step, zp, qmin, qmax = layer.act.quant_params()
    a, zr = step.double().reshape(-1), zp.double().reshape(-1)
    wq, ws = layer.int_weight()
    shape = [1] * wq.ndim
    shape[1] = -1  # input channels: dim 1 of conv and linear weights
    wf = wq.double() * ws.double().reshape([-1] + [1] * (wq.ndim - 1)) * a.reshape(shape)
    q, s = split_int8_terms(wf, terms)
    z_shift = int(zr.max()) - qmin
    top = qmax - int(zr.min()) + z_shift
    out = {"weight_int": q, "weight_scale": s.float(), "terms": max(1, int(terms)), "step": a,
           "qmin": qmin, "qmax": qmax}
    if top <= 255:
        out.update(route="shift", x_zp=z_shift, offset=torch.full_like(a, z_shift),
                   lo=(qmin - zr + z_shift), hi=(qmax - zr + z_shift))
    else:
        z_c = zr - qmin  # code of a real 0 in channel c (may lie outside 0..255)
        zk = int(min(max(round(float(z_c.median())), 0), 255))
        wdeq = q.double() * s.double().reshape([-1] + [1] * (q.ndim - 1))
        wdeq = wdeq.reshape(out["terms"], -1, *wq.shape[1:]).sum(dim=0)  # (O, C, *k)
        kz = (wdeq * (z_c - zk).reshape(shape)).sum(dim=1, keepdim=True)  # (O, 1, *k)
        out.update(route="bias", x_zp=zk, offset=z_c, lo=torch.zeros_like(zr),
                   hi=torch.full_like(zr, qmax - qmin), zero_kernel=kz)
    return out
