"""Errors that the CLI reports as one line, without a traceback."""

from __future__ import annotations

from pathlib import Path


class TunesiftError(Exception):
    """Base class: anything raised as a TunesiftError is the user's to fix, not a bug."""


class InputError(TunesiftError):
    """Bad user input, located at ``path`` (and ``line``, 1-based, when known)."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            where += ": "
        return where + self.message


class OutputError(InputError):
    """An output that cannot or must not be written (it is an input, exists, or the disk failed)."""
