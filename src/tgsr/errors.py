"""Errors that name where the problem is: file, line, field."""

from __future__ import annotations

from pathlib import Path


class TgsrError(Exception):
    """Base class for errors tgsr reports to users."""


class RecordError(TgsrError):
    """A malformed record in a JSONL/JSON/CSV file."""

    def __init__(self, path: str | Path | None, line: int | None, field: str | None, reason: str):
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.reason = reason
        where = self.path or "<memory>"
        if line is not None:
            where += f":{line}"
        what = f" field '{field}'" if field else ""
        super().__init__(f"{where}:{what} {reason}".replace(": ", ": ", 1))

    def as_row(self) -> dict:
        return {"path": self.path, "line": self.line, "field": self.field, "reason": self.reason}


class AudioError(TgsrError):
    """Audio that is missing, unreadable, empty or otherwise unusable."""

    def __init__(self, path: str | Path | None, reason: str):
        self.path = str(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path or '<array>'}: {reason}")

    def as_row(self) -> dict:
        return {"path": self.path, "reason": self.reason}
