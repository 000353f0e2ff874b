"""Build a C source file into a cached shared library and run its passes on a few threads.

Why plain C + ctypes rather than a torch C++ extension: no headers, so a library builds in about
a second on first use, and a machine without a compiler keeps the numpy/torch path (each caller
has one). `QSCI_NATIVE=0` turns every library off. Libraries are cached per source, flags and
CPU (`-march=native`) under `QSCI_CACHE_DIR` or `~/.cache/qsci/native`. Used by the int8 graph
(`qsci.deploy.int8.native`) and by GAP-TV (`qsci.solvers.gaptv_native`).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

# Compile-only flags: linked with -ffast-math, its start-up code (crtfastmath) would turn on
# flush-to-zero for the whole process, so the link step never gets the source's flags.
BASE_FLAGS = ["-O3", "-fPIC"]
if platform.machine() in ("x86_64", "AMD64"):  # 16 float lanes per instruction where the CPU has them
    BASE_FLAGS += ["-march=native", "-mprefer-vector-width=512"]


def enabled() -> bool:
    return os.environ.get("QSCI_NATIVE", "1") != "0"


def _cpu_key() -> str:
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return hashlib.sha256(f"{platform.machine()} {flags}".encode()).hexdigest()[:12]


def cache_dir() -> Path:
    root = os.environ.get("QSCI_CACHE_DIR")
    return Path(root) / "native" if root else Path.home() / ".cache" / "qsci" / "native"


def _build(source: Path, flags: list[str], lib: Path) -> None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise OSError("no C compiler (cc/gcc) on PATH")
    lib.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:  # build aside, then rename: no half-written library
        part = Path(tmp) / lib.name
        obj = Path(tmp) / f"{source.stem}.o"
        for cmd in ([cc, *flags, "-c", "-o", str(obj), str(source)], [cc, "-shared", "-o", str(part), str(obj), "-lm"]):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise OSError(f"{cc} failed: {proc.stderr.strip()[-500:]}")
        os.replace(part, lib)


# C argument types for `load`'s signatures
PTR, I64, F32, INT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_int


def load(source: Path, flags: Sequence[str], signatures: dict[str, tuple[list, object]] | None = None
         ) -> tuple[ctypes.CDLL | None, str]:
    """(library, how it was found) or (None, why not): built on first use, then cached.
    `signatures`: {function: (argtypes, restype)} declared on the loaded library."""
    if not enabled():
        return None, "disabled by QSCI_NATIVE=0"
    flags = list(flags)
    digest = hashlib.sha256(source.read_bytes() + " ".join(flags).encode()).hexdigest()[:12]
    lib = cache_dir() / f"{source.stem}_{digest}_{_cpu_key()}.so"
    try:
        if not lib.is_file():
            _build(source, flags, lib)
        dll = ctypes.CDLL(str(lib))
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"compiled kernels unavailable: {exc}"
    for name, (argtypes, restype) in (signatures or {}).items():
        fn = getattr(dll, name)
        fn.argtypes, fn.restype = argtypes, restype
    return dll, f"built {lib}"


@functools.lru_cache(maxsize=4)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, workers - 1), thread_name_prefix="qsci-native")


def parallel_map(run: Callable[[int], object], starts: list[int], workers: int) -> list:
    """run(start) for each slice, the calling thread taking the first (ctypes drops the GIL
    during a call, so the slices run at once)."""
    if len(starts) == 1 or workers <= 1:
        return [run(s) for s in starts]
    rest = [_pool(workers).submit(run, i) for i in starts[1:]]
    return [run(starts[0])] + [f.result() for f in rest]

