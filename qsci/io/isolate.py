"""Parse untrusted uploads in a child process with a time and a memory limit.

A crafted file can crash a C parser (a segmentation fault, an abort) or make it allocate without
end; in the app's own process that would take every user's session down. `read_upload` runs the
parser (by default `qsci.scenes.scene_from_files`) in a child started by a fork server (a clean
interpreter holding only numpy and the readers, so forking is cheap and safe while the app runs
threads and torch), with `RLIMIT_AS` as the memory cap and a wall-clock deadline. Whatever
happens in the child ends, in the parent, as one `QSCIError` line naming the file being read.

Results come back as `.npy` bytes (read with `allow_pickle=False`) and JSON, never as pickles.
Limits: `QSCI_UPLOAD_TIMEOUT_S` (default 120 s) and `QSCI_UPLOAD_MEMORY_MB` (default 4096 MB).
"""

from __future__ import annotations

import importlib
import io
import json
import multiprocessing
import os
import signal
import threading
import time

import numpy as np

from qsci.errors import InputFileError, QSCIError

DEFAULT_PARSER = "qsci.scenes:scene_from_files"
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MEMORY_MB = 4096
_PRELOAD = ["qsci.io", "qsci.scenes"]
_ctx_lock = threading.Lock()
_ctx = None


def _context():
    global _ctx
    with _ctx_lock:
        if _ctx is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(_PRELOAD)
            _ctx = ctx
        return _ctx


def _env_number(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, "") or default)
    except ValueError:
        raise QSCIError(f"{name} must be a number, got {os.environ.get(name)!r}") from None
    return value if value > 0 else default


def _npy(arr: np.ndarray | None) -> bytes:
    buf = io.BytesIO()
    if arr is not None:
        np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _from_npy(data: bytes) -> np.ndarray | None:
    return np.load(io.BytesIO(data), allow_pickle=False) if data else None


def _child(conn, parser: str, args: tuple, kwargs: dict, memory_bytes: int) -> None:
    """Runs in the child: limit memory, report each file before it is parsed, send the result."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    except (ImportError, ValueError, OSError):
        pass
    from qsci.io import readers

    readers.READ_HOOK = lambda path, role: conn.send_bytes(b"R" + json.dumps([str(path), role]).encode())
    try:
        module, func = parser.split(":")
        scene = getattr(importlib.import_module(module), func)(*args, **kwargs)
        if isinstance(scene, np.ndarray):  # one array (e.g. the frames of an uploaded video)
            conn.send_bytes(b"N" + _npy(scene))
            return
        if not hasattr(scene, "meas"):  # a plain JSON-able result (e.g. a description of one file)
            conn.send_bytes(b"J" + json.dumps(scene).encode())
            return
        head = {"name": scene.name, "kind": scene.kind, "info": scene.info}
        conn.send_bytes(b"H" + json.dumps(head).encode())
        for arr in (scene.meas, scene.mask, scene.gt):
            conn.send_bytes(b"A" + _npy(arr))
        conn.send_bytes(b"D")
    except QSCIError as exc:
        conn.send_bytes(b"E" + str(exc).encode())
    except MemoryError:
        conn.send_bytes(b"M")
    except Exception as exc:  # a bug, not a bad file; still one line in the parent
        conn.send_bytes(b"E" + f"internal error while reading the upload: {type(exc).__name__}: {exc}".encode())
    finally:
        conn.close()


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def read_upload(*args, parser: str = DEFAULT_PARSER, timeout_s: float | None = None,
                memory_mb: float | None = None, **kwargs):
    """`parser(*args, **kwargs)` computed in a limited child process.

    `parser` is "module:function" returning a `SceneInput` (rebuilt here from `.npy` bytes), a
    numpy array (e.g. `qsci.io.readers:read_scene`), or a JSON-able value (returned as decoded JSON: use this to describe single files safely);
    `args[0]` names the file blamed when nothing was read yet.
    """
    from qsci.scenes import SceneInput

    timeout_s = float(timeout_s or _env_number("QSCI_UPLOAD_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    memory_mb = float(memory_mb or _env_number("QSCI_UPLOAD_MEMORY_MB", DEFAULT_MEMORY_MB))
    ctx = _context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, parser, tuple(args), dict(kwargs), int(memory_mb * 2**20)),
                       daemon=True)
    proc.start()
    send.close()
    current: tuple[str, str] = (str(args[0]) if args else "", "upload")
    head, arrays = None, []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise InputFileError(current[0], f"reading the {current[1]} took longer than {timeout_s:g} s and "
                                                 "was stopped (damaged or crafted file?)")
            if not recv.poll(min(left, 0.5)):
                if not proc.is_alive() and not recv.poll(0):
                    raise _crash(proc, current)
                continue
            try:
                msg = recv.recv_bytes()
            except (EOFError, OSError):
                raise _crash(proc, current) from None
            tag, body = msg[:1], msg[1:]
            if tag == b"R":
                path, role = json.loads(body)
                current = (path, role)
            elif tag == b"E":
                raise QSCIError(body.decode(errors="replace"))
            elif tag == b"M":
                raise InputFileError(current[0], f"reading the {current[1]} needs more than the "
                                                 f"{memory_mb:g} MB allowed for an upload")
            elif tag == b"N":
                return _from_npy(body)
            elif tag == b"J":
                return json.loads(body)
            elif tag == b"H":
                head = json.loads(body)
            elif tag == b"A":
                arrays.append(_from_npy(body))
            elif tag == b"D":
                break
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    meas, mask, gt = arrays
    return SceneInput(head["name"], head["kind"], meas, mask, gt, head["info"])


def _crash(proc, current: tuple[str, str]) -> InputFileError:
    proc.join(5)
    code = proc.exitcode
    how = _signal_name(code) if code is not None and code < 0 else f"exit code {code}"
    return InputFileError(current[0], f"the parser crashed ({how}) while reading the {current[1]}; "
                                      "the file is damaged or not what its extension says")


__all__ = ["read_upload", "DEFAULT_PARSER"]
