"""`convert_to_int8`: a calibrated QAT model with its quantized layers and blocks on integer kernels."""

from __future__ import annotations

import copy

import torch.nn as nn

from qsci.deploy.int8.attention import Int8TSAB
from qsci.deploy.int8.blocks import Int8CFormer, Int8QSCINet, Int8ResDNet
from qsci.deploy.int8.codes import FusedFakeQuant
from qsci.deploy.int8.conv import Int8Conv3d
from qsci.deploy.int8.layers import Int8Linear
from qsci.errors import QSCIError
from qsci.models.blocks import TSAB, CFormer, ResDNet
from qsci.models.qsci_net import QSCINet
from qsci.quant.lsq import ActQuantizer, QConv3d, QLinear


def convert_to_int8(model: nn.Module, kernel: str = "auto", inplace: bool = False, terms: int = 3,
                    exact: bool = False, fuse: bool = True) -> nn.Module:
    """Integer-kernel copy of a calibrated QAT model, in eval mode.

    Every QConv3d / QLinear becomes Int8Conv3d / Int8Linear, every other ActQuantizer a
    FusedFakeQuant; everything else (LeakyReLU, attention, pixel shuffle) stays float. Layers
    with per-channel activation steps (the authors' checkpoints) have the steps folded into
    their weights as `terms` int8 terms (`fold_per_channel`; 3 = exact to float precision, 1 =
    plain re-quantization, faster and approximate). The top-level module and its forward stay
    (a residual or any other wrapper logic keeps working). Raises QSCIError for uninitialised
    steps or > 8 bits. `kernel="reference"` runs the same integer arithmetic with float convs.
    `exact=True` quantizes layer inputs with the fake-quant model's own float operations (x / a,
    + zr, round); `exact=False` uses torch's one-pass quantize (x * (1/a)), faster, but codes
    at float-rounding distance from a boundary can differ and low-bit networks amplify that
    (docs/int8.md: the reconstruction PSNR stays within 0.1 dB, the outputs differ visibly).
    `fuse=True` (default; only where every layer involved is per-tensor on oneDNN with `exact=False`)
    runs the fused graph: planar integer attention (`Int8TSAB.forward_tokens`), residual sums and
    concatenations in the kernels (`Int8CFormer`, `Int8ResDNet`), the full-resolution stages on
    uint8 codes (`Int8QSCINet`). `fuse=False` keeps one wrapper per layer (the earlier path, for
    comparisons). Both compute the fake-quant model's values up to float rounding.
    """
    if isinstance(model, (QConv3d, QLinear)):
        raise QSCIError("convert_to_int8 needs a model that contains quantized layers, not a layer")
    if not inplace:
        model = copy.deepcopy(model)
    _replace_children(model.eval(), "", kernel, terms, exact)
    if not fuse:
        for m in model.modules():
            if isinstance(m, (Int8CFormer, Int8ResDNet)):
                m.fused = False
            elif isinstance(m, (Int8TSAB, Int8Conv3d)):
                m.fuse = False
    elif type(model) is QSCINet and Int8QSCINet.fusable(model):
        model.__class__ = Int8QSCINet  # same modules and state; the stages on codes (its docstring)
        model.reorder_shuffle_channels()
    if not int8_layers(model):
        raise QSCIError("model has no QConv3d / QLinear layers: int8 needs a quantized (Q-SCI) model")
    return model


def _replace_children(parent: nn.Module, prefix: str, kernel: str, terms: int, exact: bool = False) -> None:
    for child_name, child in list(parent.named_children()):
        full = prefix + child_name
        if isinstance(child, QConv3d):
            setattr(parent, child_name, Int8Conv3d(child, full, kernel, terms, exact))
        elif isinstance(child, QLinear):
            setattr(parent, child_name, Int8Linear(child, full, kernel, terms, exact))
        elif _is_quantized_tsab(child):
            fast = Int8TSAB(child, exact)  # takes the float quantizers first, then its linears convert
            _replace_children(fast, full + ".", kernel, terms, exact)
            setattr(parent, child_name, fast)
        elif isinstance(child, (CFormer, ResDNet)):
            _replace_children(child, full + ".", kernel, terms, exact)  # its layers first, then the block
            setattr(parent, child_name, (Int8CFormer if isinstance(child, CFormer) else Int8ResDNet)(child))
        elif isinstance(child, ActQuantizer):
            if float(child.init_state) == 0:
                raise QSCIError(f"{full}: quantizer step is not initialised")
            setattr(parent, child_name, FusedFakeQuant(child))
        else:
            _replace_children(child, full + ".", kernel, terms, exact)


def _is_quantized_tsab(module: nn.Module) -> bool:
    return isinstance(module, TSAB) and bool(getattr(module, "quantized", False)) \
        and all(a.alpha.numel() in (1, module.heads) for a in (module.q_act, module.k_act, module.v_act))


def int8_layers(model: nn.Module) -> list[nn.Module]:
    """The integer-kernel layers of a converted model (for reports and tests)."""
    return [m for m in model.modules() if isinstance(m, (Int8Conv3d, Int8Linear))]
