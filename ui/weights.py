"""The authors' checkpoints on first use: download with progress, verified by git blob id.

`qsci.data` does the download (loopback mirrors, size caps, retries) and the verification (the
file's git blob id must equal the registry's, else it is deleted); this module only reports the
bytes to the page and turns a failure into one short line. Once a file is in the cache the
method behaves like every other one, without a restart: `qsci.zoo` looks availability up per call.
"""

from __future__ import annotations

from typing import Callable

from qsci.errors import DataUnavailableError, QSCIError

Report = Callable[[float, str], None] | None


def needs_download(name: str) -> bool:
    """True for an authors' checkpoint that is not on this machine yet."""
    from qsci import data, zoo

    entry = zoo.OFFICIAL.get(name)
    return entry is not None and not data.is_available(entry[0])


def ensure(name: str, report: Report = None) -> bool:
    """Download `name`'s weights if they are the authors' and missing; True when a download ran.

    `report(fraction, message)` sees the bytes as they arrive ("12.0 of 15.2 MB"). Offline
    (`QSCI_OFFLINE`) or when the download fails: one line that says the method needs network.
    """
    from qsci import data, zoo
    from ui import catalog

    if not needs_download(name):
        return False
    data_name = zoo.OFFICIAL[name][0]
    if catalog.offline():
        raise QSCIError(f"{name}: the authors' checkpoint needs network (downloads are off here)")

    def progress(done: int, total: int | None) -> None:
        if report is None:
            return
        mb = f"{done / 2**20:.1f}" + (f" of {total / 2**20:.1f}" if total else "")
        report(done / total if total else 0.0, f"{name}: downloading the authors' checkpoint ({mb} MB)")

    if report:
        report(0.0, f"{name}: downloading the authors' checkpoint")
    try:
        data.fetch(data_name, progress=progress)
    except DataUnavailableError as exc:
        text = str(exc)
        why = "the file arrived corrupted (git blob id mismatch) and was deleted" if "corrupted" in text \
            else "the download failed"
        raise QSCIError(f"{name}: the authors' checkpoint needs network; {why}") from None
    if report:
        report(1.0, f"{name}: checkpoint downloaded and verified")
    return True
