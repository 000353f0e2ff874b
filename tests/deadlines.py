"""A SIGALRM deadline for in-process calls, so a hanging reader fails its test instead of the suite."""

from __future__ import annotations

import signal
from contextlib import contextmanager


@contextmanager
def deadline(seconds: int, what: str = "call"):
    def boom(*_):
        raise TimeoutError(f"{what} did not answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
