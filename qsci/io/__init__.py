"""File input/output: readers with validation, and writers (layer 1; no torch needed).

Readers return time-first float32 arrays and raise `qsci.errors.InputFileError` (a `QSCIError`)
with one line naming the file and the problem. Axis rules are documented in `qsci.io.formats`.
"""

from qsci.io.limits import DEFAULT_LIMITS, Limits
from qsci.io.readers import Measurement, read_mask, read_measurement, read_scene
from qsci.io.validate import check_pair
from qsci.io.writers import save_frames, to_uint8, write_video

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "Measurement",
    "check_pair",
    "read_mask",
    "read_measurement",
    "read_scene",
    "save_frames",
    "to_uint8",
    "write_video",
]
