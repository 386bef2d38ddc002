"""The record model shared by every reader: columnar batches of texts with their provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RecordBatch:
    """A batch of good records, in corpus order.

    ``index[i]`` is the record's row in the whole corpus (good records only, counted across
    files in the order given); ``fields[i]`` holds every original field of the record, passed
    through unchanged to the output; ``location[i]`` is ``(file, line_or_row)``, 1-based.
    """

    index: list[int]
    ids: list[str]
    texts: list[str]
    sources: list[str]
    fields: list[dict[str, Any]]
    location: list[tuple[str, int]]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class BadRecord:
    """One record that could not be read, and why."""

    path: str
    line: int
    reason: str


@dataclass
class ReadReport:
    """What a corpus read kept and skipped, per file. Filled in while streaming."""

    good: int = 0
    bad: int = 0
    bad_by_reason: dict[str, int] = field(default_factory=dict)
    examples: list[BadRecord] = field(default_factory=list)
    per_file: dict[str, int] = field(default_factory=dict)

    max_examples = 20

    def skipped_note(self) -> str:
        """``" (N bad records skipped; first: file:line: reason)"``, or ``""`` when none were."""
        if not self.bad:
            return ""
        first = self.examples[0] if self.examples else None
        example = f"; first: {first.path}:{first.line}: {first.reason}" if first else ""
        return f" ({self.bad} bad record{'s' * (self.bad != 1)} skipped{example})"

    def summary(self) -> dict[str, Any]:
        """What a sidecar records of the skipped records: count, reasons, first examples."""
        return {
            "skipped": self.bad,
            "by_reason": dict(self.bad_by_reason),
            "examples": [f"{b.path}:{b.line}: {b.reason}" for b in self.examples],
        }

    def add_bad(self, record: BadRecord) -> None:
        self.bad += 1
        self.bad_by_reason[record.reason] = self.bad_by_reason.get(record.reason, 0) + 1
        if len(self.examples) < self.max_examples:
            self.examples.append(record)
