"""A labeled target task: what ``tunesift evaluate`` fine-tunes and tests on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LabeledTask:
    """Train and test splits of a classification target (texts with string labels).

    ``unlabeled`` holds more target-domain texts without labels (the selection's target
    sample, for instance); evaluation never trains on ``test_texts``.
    """

    name: str
    train_texts: list[str]
    train_labels: list[str]
    test_texts: list[str]
    test_labels: list[str]

    def __post_init__(self) -> None:
        if len(self.train_texts) != len(self.train_labels):
            raise ValueError("train texts and labels differ in length")
        if len(self.test_texts) != len(self.test_labels):
            raise ValueError("test texts and labels differ in length")

    @property
    def labels(self) -> list[str]:
        return sorted(set(self.train_labels) | set(self.test_labels))
