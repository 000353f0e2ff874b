"""Quantizer primitives: LSQ/LSQ+ fake quantizers and quantized layers (execution and counting: qsci.deploy)."""

from qsci.quant.lsq import ActQuantizer, QConv3d, QLinear, WeightQuantizer

__all__ = ["ActQuantizer", "WeightQuantizer", "QConv3d", "QLinear"]
