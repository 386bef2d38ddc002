"""Which sources? GradEx task selection (Li, Zhang, Wang, Zhang, EMNLP 2024 Findings)."""

from tunesift.tasks.estimate import GradientStore, SubsetEstimator, choose, fit_logistic
from tunesift.tasks.gradex import GradEx, Validation
from tunesift.tasks.lm import ByteTokenizer, Example, TinyLM, TinyLMConfig, TrainConfig

__all__ = [
    "ByteTokenizer",
    "Example",
    "GradEx",
    "GradientStore",
    "SubsetEstimator",
    "TinyLM",
    "TinyLMConfig",
    "TrainConfig",
    "Validation",
    "choose",
    "fit_logistic",
]
