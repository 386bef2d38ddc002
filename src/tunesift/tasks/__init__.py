"""Which sources? GradEx task selection (Li, Zhang, Wang, Zhang, EMNLP 2024 Findings).

``select_tasks(tasks, target, ...)`` and ``validate(tasks, target, ...)`` are ``tunesift tasks``
as Python calls (``tunesift.tasks.pipeline``); ``GradEx`` is the estimator underneath.
"""

from tunesift.tasks.estimate import GradientStore, SubsetEstimator, choose, fit_logistic
from tunesift.tasks.gradex import GradEx, Validation
from tunesift.tasks.lm import ByteTokenizer, Example, TinyLM, TinyLMConfig, TrainConfig
from tunesift.tasks.pipeline import (
    TaskSelection,
    TaskValidation,
    load_tasks_model,
    select_tasks,
    validate,
)

__all__ = [
    "ByteTokenizer",
    "Example",
    "GradEx",
    "GradientStore",
    "SubsetEstimator",
    "TaskSelection",
    "TaskValidation",
    "TinyLM",
    "TinyLMConfig",
    "TrainConfig",
    "Validation",
    "choose",
    "fit_logistic",
    "load_tasks_model",
    "select_tasks",
    "validate",
]
