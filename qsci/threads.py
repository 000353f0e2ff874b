"""OpenMP threads that sleep while they wait, for the front ends (app, CLI).

Why: with libgomp's default spin-waiting, torch's idle OpenMP team keeps the second core busy
between ops, so the int8 graph's compiled passes (which run their own worker thread) and any
other process on a 2-core machine get descheduled waits: the app ran 1.35x slower than
`qsci bench` (which already asked for passive threads) until it did the same. libgomp reads the
setting when torch loads, so this must run before the first torch import.
"""

from __future__ import annotations

import os
import sys


def prefer_passive_omp_threads() -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user chose a policy; False if torch is already
    loaded (then it has no effect)."""
    if "torch" in sys.modules:
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return True
