"""Integer-kernel CPU inference for trained QAT models (per-tensor or per-channel activation steps).

`convert_to_int8(model)` puts a calibrated QAT model on oneDNN u8 x s8 -> fp32 kernels; the result
equals the fake-quantized model up to float rounding. One responsibility per module:
`codes` (floats -> uint8 codes, the float fake quantizers that stay), `fold` (a layer's quantizers
as kernel parameters, per-channel steps folded into int8 weights), `layers` (shared layer state,
`Int8Linear`), `conv` (`Int8Conv3d`), `attention` (`Int8TSAB`), `blocks` (the fused graph:
`Int8CFormer`, `Int8ResDNet`, `Int8QSCINet`), `convert` (`convert_to_int8`), `native` (the
compiled C passes of `kernels.c`: fused attention and quantize passes, or the torch passes where
no compiler is found). Timings: docs/int8.md.
"""

from qsci.deploy.int8.attention import Int8TSAB
from qsci.deploy.int8.blocks import Int8CFormer, Int8QSCINet, Int8ResDNet
from qsci.deploy.int8.codes import (ActQuantizerParams, FusedFakeQuant, codes_fit, fake_quant_via_codes,
                                    onednn_available, quantize_codes, quantize_codes_exact,
                                    quantize_codes_per_channel, quantize_codes_per_channel_exact)
from qsci.deploy.int8.conv import Int8Conv3d
from qsci.deploy.int8.convert import convert_to_int8, int8_layers
from qsci.deploy.int8.fold import fold_per_channel, requantize_per_output, split_int8_terms
from qsci.deploy.int8.layers import Int8Linear

__all__ = [
    "convert_to_int8", "int8_layers", "Int8Conv3d", "Int8Linear", "Int8TSAB", "Int8CFormer", "Int8ResDNet",
    "Int8QSCINet", "FusedFakeQuant", "ActQuantizerParams", "fold_per_channel", "split_int8_terms",
    "requantize_per_output", "quantize_codes", "quantize_codes_exact", "quantize_codes_per_channel",
    "quantize_codes_per_channel_exact", "onednn_available", "codes_fit", "fake_quant_via_codes",
]
