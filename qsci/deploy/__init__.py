"""Deploy layer (3): what turns a trained network into what runs and ships.

`int8` (int8 execution, a package), `packing` (packed b-bit files), `complexity` (params, MACs, BOPs).
It sits above `qsci.models` and `qsci.quant`, so it imports them at module level; nothing is
re-exported here, so importing one submodule does not load the others.
"""
