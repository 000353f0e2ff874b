"""The one error type users see.

Every problem with user input (a file, a name, a size) is raised as `QSCIError` (or a subclass)
with a one-line message that names the file and says what is wrong. Front ends catch exactly this
type and show the message; anything else is a bug.
"""

from __future__ import annotations

from pathlib import Path


class QSCIError(ValueError):
    """A user-facing error with a readable one-line message."""


class InputFileError(QSCIError):
    """A file that cannot be used: `path` names it, `problem` says why."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        name = Path(self.path).name if self.path else ""
        name = name if name.isprintable() else repr(name)[1:-1]  # keep the message on one line
        where = f"{name}: " if name else ""
        super().__init__(f"{where}{problem}")


class DataUnavailableError(QSCIError):
    """A registry file that is neither local nor downloadable right now."""
