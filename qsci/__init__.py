"""Q-SCI studio: low-bit video snapshot compressive imaging reconstruction."""

__version__ = "0.1.0"
