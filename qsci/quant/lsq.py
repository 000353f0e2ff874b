"""LSQ / LSQ+ fake quantizers and the quantized Conv3d / Linear layers (spec section 5).

Why fake quantization: training needs float tensors with straight-through gradients, while the
integer-kernel converter needs the exact integers. Both come from the same few functions here
(`fake_quant_weight`, `fake_quant_act`, `QLayerMixin.int_weight`, `ActQuantizer.quant_params`),
so the formulas exist exactly once.

State-dict names follow the authors' checkpoints: a quantized layer holds `weight`, `bias`,
`alpha` (per-output-channel weight step), `init_state`, and `act.{alpha, zero_point, init_state,
signed}` for the quantizer of its input.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Below this the first-batch step would be 0 (an all-zero channel) and x / a would be NaN.
_MIN_STEP = 1e-8
# Values below this in the first batch make an activation quantizer signed (spec section 5).
SIGNED_THRESHOLD = -1e-5
# How a fresh quantizer picks its first step: "lsq" is the paper's `2 * mean|.| / sqrt(Qp)`;
# "mse" searches the clipping range (and, for activations, the zero point) that minimises the
# quantization error of the first tensor (our extension for b < 8; see `mse_act_params`).
STEP_INITS = ("lsq", "mse")
_MSE_GRID = 48
_MSE_SAMPLES = 1 << 18


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity gradient (straight-through estimator)."""
    return (x.round() - x).detach() + x


def grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Value x, gradient multiplied by `scale` (the LSQ step-size gradient scale)."""
    return (x - x * scale).detach() + x * scale


def signed_range(bits: int) -> tuple[int, int]:
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def unsigned_range(bits: int) -> tuple[int, int]:
    return 0, 2**bits - 1


def _along(v: torch.Tensor, ndim: int, axis: int) -> torch.Tensor:
    """Reshape a 1-D per-channel vector so it broadcasts along `axis` of an ndim tensor."""
    if v.numel() == 1:
        return v.reshape([1] * ndim)
    shape = [1] * ndim
    shape[axis] = v.numel()
    return v.reshape(shape)


def fake_quant_weight(w: torch.Tensor, alpha: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-output-channel LSQ: `round(clamp(w / a_o, Qn, Qp)) * a_o`.

    w: (O, ...), alpha: (O,). Gradient of alpha is scaled by 1 / sqrt(w.numel() * Qp).
    """
    qn, qp = signed_range(bits)
    a = grad_scale(alpha, 1.0 / math.sqrt(w.numel() * qp))
    a = _along(a, w.ndim, 0)  # (O, 1, ...)
    return round_ste((w / a).clamp(qn, qp)) * a


def fake_quant_act(
    x: torch.Tensor, alpha: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int, ch_axis: int
) -> torch.Tensor:
    """LSQ+ asymmetric: `(round(clamp(x / a + round(z), qmin, qmax)) - round(z)) * a`.

    alpha / zero_point: (1,) per tensor or (C,) along `ch_axis`. Both gradients are scaled by
    1 / sqrt(x.numel() * qmax).
    """
    g = 1.0 / math.sqrt(x.numel() * qmax)
    a = _along(grad_scale(alpha, g), x.ndim, ch_axis)
    zr = _along(round_ste(grad_scale(zero_point, g)), x.ndim, ch_axis)
    return (round_ste((x / a + zr).clamp(qmin, qmax)) - zr) * a


class ActQuantizer(nn.Module):
    """LSQ+ quantizer for the activation entering a layer (learnable step and zero point).

    `per_channel=True` keeps one step per channel along `ch_axis` (what the authors' checkpoints
    hold); `per_channel=False` keeps one step for the whole tensor (what integer kernels can run).
    A fresh quantizer (`init_state == 0`) initialises itself from the first tensor it sees, in
    train or eval mode: step `2 * mean|x| / sqrt(Qp)`, signed if any value < -1e-5.
    """

    def __init__(self, bits: int = 8, channels: int = 1, per_channel: bool = True, ch_axis: int = 1):
        super().__init__()
        self.bits = int(bits)
        self.per_channel = bool(per_channel)
        self.ch_axis = ch_axis
        n = channels if per_channel else 1
        self.alpha = nn.Parameter(torch.ones(n))
        self.zero_point = nn.Parameter(torch.zeros(n))
        self.register_buffer("init_state", torch.zeros(1))
        self.register_buffer("signed", torch.zeros(1))
        self.step_init = "lsq"  # not saved: it only matters before the first tensor

    def qrange(self) -> tuple[int, int]:
        return signed_range(self.bits) if bool(self.signed.item()) else unsigned_range(self.bits)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """First-batch initialisation of `signed`, `alpha` and (with `step_init="mse"`) the zero point."""
        self.signed.fill_(float(bool((x < SIGNED_THRESHOLD).any())))
        qmin, qmax = self.qrange()
        self.init_state.fill_(1)
        if self.step_init == "mse":
            alpha, zero_point = mse_act_params(x, qmin, qmax, self.ch_axis if self.alpha.numel() > 1 else None)
            self.alpha.copy_(alpha)
            self.zero_point.copy_(zero_point)
            return
        if self.alpha.numel() > 1:
            dims = [d for d in range(x.ndim) if d != self.ch_axis % x.ndim]
            mean_abs = x.detach().abs().mean(dim=dims)  # (C,)
        else:
            mean_abs = x.detach().abs().mean().reshape(1)
        self.alpha.copy_((2 * mean_abs / math.sqrt(qmax)).clamp_min(_MIN_STEP))
        self.zero_point.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.init_state.item() == 0:
            self.initialize(x)
        qmin, qmax = self.qrange()
        return fake_quant_act(x, self.alpha, self.zero_point, qmin, qmax, self.ch_axis)

    @torch.no_grad()
    def quant_params(self) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """(step (n,), integer zero point (n,), qmin, qmax) with n = 1 or channels.

        The integer code of x is `clamp(round(x / step + zp), qmin, qmax)`; x ~ (code - zp) * step.
        """
        qmin, qmax = self.qrange()
        return self.alpha.detach().clone(), self.zero_point.detach().round(), qmin, qmax

    def extra_repr(self) -> str:
        return f"bits={self.bits}, per_channel={self.per_channel}, n={self.alpha.numel()}, ch_axis={self.ch_axis}"


class WeightQuantizer(nn.Module):
    """Stand-alone per-output-channel symmetric LSQ weight quantizer (step `alpha`, shape (O,)).

    The quantized layers below hold the same `alpha` / `init_state` directly on themselves, as
    the authors' checkpoints do; this module is for weights used outside those layers.
    """

    def __init__(self, bits: int, out_channels: int):
        super().__init__()
        self.bits = int(bits)
        self.alpha = nn.Parameter(torch.ones(out_channels))
        self.register_buffer("init_state", torch.zeros(1))
        self.step_init = "lsq"

    @torch.no_grad()
    def initialize(self, w: torch.Tensor) -> None:
        self.alpha.copy_(init_weight_step(w, self.bits, self.step_init))
        self.init_state.fill_(1)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.init_state.item() == 0:
            self.initialize(w)
        return fake_quant_weight(w, self.alpha, self.bits)


def init_weight_step(w: torch.Tensor, bits: int, method: str = "lsq") -> torch.Tensor:
    """Per-output-channel initial step, shape (O,): LSQ's `2 * mean|w_o| / sqrt(Qp)`, or ("mse")
    the symmetric clipping `c * max|w_o| / Qp` with the least squared error over a grid of c."""
    qn, qp = signed_range(bits)
    rows = w.detach().float().reshape(w.shape[0], -1)
    if method == "lsq":
        return (2 * rows.abs().mean(dim=1) / math.sqrt(qp)).clamp_min(_MIN_STEP)
    top = rows.abs().amax(dim=1) / qp

    def candidate(c: float):
        a = (top * c).clamp_min(_MIN_STEP)
        q = (rows / a[:, None]).round().clamp(qn, qp) * a[:, None]
        return (q - rows).pow(2).mean(dim=1), (a,)
    return _least_error(candidate)[0]


def _least_error(candidate) -> tuple[torch.Tensor, ...]:
    """Per row, the parameters of the grid point c in (0, 1] whose `candidate(c)` error is least.

    `candidate(c)` returns (error (n,), (param (n,), ...)).
    """
    best_err, best = None, None
    for c in torch.linspace(1.0 / _MSE_GRID, 1.0, _MSE_GRID).tolist():
        err, params = candidate(c)
        if best_err is None:
            best_err, best = err, params
            continue
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = tuple(torch.where(better, new, old) for new, old in zip(params, best))
    return best


@torch.no_grad()
def mse_act_params(x: torch.Tensor, qmin: int, qmax: int, ch_axis: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(step, zero point) per tensor (`ch_axis=None`) or per channel: the range
    `c * [min(x, 0), max(x, 0)]` mapped onto the codes qmin..qmax, with c chosen on a grid to
    minimise the squared error of the fake-quantized tensor.

    Why: LSQ's mean-based step with zero point 0 leaves most codes unused at b < 8 bits, e.g. a
    signed 4-bit quantizer after LeakyReLU (which has tiny negatives) spends half its codes on
    them, and the [0, 1] network input got 3 of 16 codes in our first QAT runs.
    """
    t = x.detach().float()
    rows = t.reshape(1, -1) if ch_axis is None else t.movedim(ch_axis, 0).reshape(t.shape[ch_axis], -1)
    if rows.shape[1] > _MSE_SAMPLES:  # a fixed, evenly spread subset keeps the search cheap
        rows = rows[:, torch.linspace(0, rows.shape[1] - 1, _MSE_SAMPLES).long()]
    lo, hi = rows.amin(dim=1).clamp(max=0), rows.amax(dim=1).clamp(min=0)

    def candidate(c: float):
        a = ((hi - lo) * c / (qmax - qmin)).clamp_min(_MIN_STEP)
        z = (qmin - lo * c / a).round()
        q = ((rows / a[:, None] + z[:, None]).round().clamp(qmin, qmax) - z[:, None]) * a[:, None]
        return (q - rows).pow(2).mean(dim=1), (a, z)
    return _least_error(candidate)


def set_step_init(model: nn.Module, method: str) -> int:
    """Choose how the model's fresh quantizers initialise their steps ("lsq" or "mse").

    Returns the number of quantizers (weight and activation) it applies to.
    """
    if method not in STEP_INITS:
        raise ValueError(f"step init must be one of {STEP_INITS}, got {method!r}")
    n = 0
    for module in model.modules():
        if isinstance(module, (ActQuantizer, WeightQuantizer, QLayerMixin)):
            module.step_init = method
            n += 1
    return n


def recalibrate_steps(model: nn.Module, bits: int) -> list[str]:
    """Mark every `bits`-bit quantizer fresh (`init_state = 0`), keeping the weights.

    Progressive quantization: a lower-bit model started from a higher-bit one keeps its weights
    and 8-bit side branches, but steps fitted to 15 levels clip or waste a 7-level grid, so the
    b-bit steps calibrate again on the first batch. Returns the names of the quantizers reset.
    """
    reset = []
    for name, module in model.named_modules():
        if isinstance(module, (ActQuantizer, WeightQuantizer, QLayerMixin)) and module.bits == bits:
            module.init_state.zero_()
            reset.append(name)
    return reset


class QLayerMixin:
    """Weight step, init flag and input quantizer shared by QConv3d and QLinear."""

    bits: int
    weight: nn.Parameter
    alpha: nn.Parameter
    init_state: torch.Tensor
    act: ActQuantizer

    def _setup_quant(self, bits: int, in_channels: int, per_channel_act: bool, ch_axis: int,
                     act_bits: int | None) -> None:
        self.bits = int(bits)
        self.alpha = nn.Parameter(torch.ones(self.weight.shape[0]))  # (O,)
        self.register_buffer("init_state", torch.zeros(1))
        self.step_init = "lsq"
        self.act = ActQuantizer(act_bits or bits, in_channels, per_channel_act, ch_axis)

    def quant_weight(self) -> torch.Tensor:
        """Fake-quantized weight (float, STE gradients); initialises `alpha` on first use."""
        if self.init_state.item() == 0:
            with torch.no_grad():
                self.alpha.copy_(init_weight_step(self.weight, self.bits, self.step_init))
                self.init_state.fill_(1)
        return fake_quant_weight(self.weight, self.alpha, self.bits)

    @torch.no_grad()
    def int_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(integer weight, per-output-channel scale (O,)): weight_q = int * scale[o].

        int8 for bits <= 8, else int32.
        """
        qn, qp = signed_range(self.bits)
        a = _along(self.alpha.detach(), self.weight.ndim, 0)
        q = (self.weight.detach() / a).clamp(qn, qp).round()
        return q.to(torch.int8 if self.bits <= 8 else torch.int32), self.alpha.detach().clone()

    def extra_repr(self) -> str:  # type: ignore[override]
        return super().extra_repr() + f", bits={self.bits}"  # type: ignore[misc]


class QConv3d(QLayerMixin, nn.Conv3d):
    """Conv3d whose weight (per output channel) and input (LSQ+) are fake-quantized at `bits`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, bits: int = 8, per_channel_act: bool = True,
                 act_bits: int | None = None):
        nn.Conv3d.__init__(self, in_channels, out_channels, kernel_size, stride=stride,
                           padding=padding, bias=bias)
        self._setup_quant(bits, in_channels, per_channel_act, 1, act_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, T, H, W) -> (B, Cout, T', H', W')
        return self._conv_forward(self.act(x), self.quant_weight(), self.bias)


class QLinear(QLayerMixin, nn.Linear):
    """Linear whose weight (per output feature) and input (LSQ+, last axis) are fake-quantized."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bits: int = 8,
                 per_channel_act: bool = True, act_bits: int | None = None):
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        self._setup_quant(bits, in_features, per_channel_act, -1, act_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        return F.linear(self.act(x), self.quant_weight(), self.bias)
