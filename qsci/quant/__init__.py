"""Quantization: LSQ/LSQ+ fake quantizers, quantized layers, complexity counting."""

from qsci.quant.lsq import ActQuantizer, QConv3d, QLinear, WeightQuantizer

__all__ = ["ActQuantizer", "WeightQuantizer", "QConv3d", "QLinear"]
