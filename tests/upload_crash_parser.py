"""Stand-in upload parsers for tests/test_upload_policy.py: they run in the upload child process.

`abort_after_reading` reads the mask like the real parser, then crashes the process the way a
broken C parser would (os.abort() -> SIGABRT); `hang` never returns; `hog` allocates without end.
"""

import os
import time


def abort_after_reading(meas_path, mask_path, gt_path=None, **kwargs):
    from qsci import io

    io.read_mask(mask_path)
    from qsci.io import readers

    if readers.READ_HOOK is not None:
        readers.READ_HOOK(meas_path, "measurement")
    os.abort()


def hang(meas_path, *args, **kwargs):
    time.sleep(3600)


def hog(meas_path, *args, **kwargs):
    blocks = []
    while True:
        blocks.append(bytearray(256 << 20))


def describe(path):
    """A JSON-able result (a per-file description) instead of a SceneInput."""
    from qsci import io

    m = io.read_measurement(path)
    return {"shape": list(m.data.shape), "axes": m.axis_order}
