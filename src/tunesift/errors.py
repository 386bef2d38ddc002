"""Errors that the CLI reports as one line, without a traceback.

Library errors speak the caller's language: a message names the Python parameter at fault
(``budget``, ``device``, ``pool_features``) and the error records it in ``param`` (with
``func`` when the bare name is ambiguous, e.g. the ``path`` of ``Selection.write``). The CLI
renders the same error with the flag the user typed for that parameter, from one mapping
(``tunesift.cli.errors.FLAGS``); library code never writes a flag.
"""

from __future__ import annotations

from pathlib import Path

#: What an error may name: one parameter, or several (``("pool_features", "target_features")``).
Param = str | tuple[str, ...] | None


class TunesiftError(Exception):
    """Base class: anything raised as a TunesiftError is the user's to fix, not a bug.

    ``param`` names the Python parameter(s) the message is about, spelled as in the message;
    ``func`` the public function or method they belong to, where the name alone is ambiguous.
    """

    def __init__(self, *args: object, param: Param = None, func: str | None = None):
        super().__init__(*args)
        self.param = param
        self.func = func

    @property
    def message(self) -> str:
        """The text without any location prefix (what a renderer may reword)."""
        return str(self)

    def params(self) -> tuple[str, ...]:
        """``param`` as a tuple (empty when the error names no parameter)."""
        if self.param is None:
            return ()
        return (self.param,) if isinstance(self.param, str) else tuple(self.param)


class NotFittedError(TunesiftError):
    """A method asked to score, order or save before ``fit`` (scikit-learn's NotFittedError)."""


class InputError(TunesiftError):
    """Bad user input, located at ``path`` (and ``line``, 1-based, when known)."""

    def __init__(
        self,
        message: str,
        path: str | Path | None = None,
        line: int | None = None,
        *,
        param: Param = None,
        func: str | None = None,
    ):
        self._message = message
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(str(self), param=param, func=func)

    @property
    def message(self) -> str:
        return self._message

    def location(self) -> str:
        """``path:line: `` (or ``path: ``), or empty when the error has no location."""
        if self.path is None:
            return ""
        return (self.path if self.line is None else f"{self.path}:{self.line}") + ": "

    def __str__(self) -> str:
        return self.location() + self._message


class OutputError(InputError):
    """An output that cannot or must not be written (it is an input, exists, or the disk failed)."""
