"""Classical (training-free) reconstruction solvers; `gaptv.gap_tv` is the GAP-TV baseline."""

from qsci.solvers.gaptv import gap_tv, tv_denoise

__all__ = ["gap_tv", "tv_denoise"]
