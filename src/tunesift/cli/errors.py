"""How the CLI words a library error: the Python parameter it names becomes the flag typed.

Library errors name Python parameters (``budget must be ...``) and record them in
``TunesiftError.param``; this module holds the one mapping from those names to the flags that
set them, and rewrites the message with it (``--budget must be ...``). A parameter with no
entry is shown as the library named it (method hyper-parameters: ``--param tol=...`` uses the
Python names already).
"""

from __future__ import annotations

import re

from tunesift.errors import InputError, TunesiftError

#: Python parameter (``func.param`` where the bare name is ambiguous) -> the flag that sets it.
FLAGS: dict[str, str] = {
    "budget": "--budget",
    "budget_tokens": "--budget-tokens",
    "max_per_source": "--max-per-source",
    "device": "--device",
    "epsilon": "--epsilon",
    "epsilon_mode": "--epsilon-mode",
    "ot_mode": "--ot-mode",
    "fit_sample": "--fit-sample",
    "pca_dim": "--pca-dim",
    "featurizer_params": "--featurizer-param",
    "SentenceEncoder.backend": "--featurizer-param backend",
    "pool_features": "--pool-features",
    "target_features": "--target-features",
    "pool": "--pool",
    "target": "--target",
    "text_field": "--text-field",
    "text_template": "--text-template",
    "methods": "--methods",
    "Selection.write.path": "--out",
    "Selection.write_scores.path": "--scores-out",
    "Comparison.write.path": "--save",
    "UserTask.unlabeled": "--task-unlabeled",
    "run_bench.method_params": "--param",
    "against": "--against",
    "overwrite": "--overwrite",
    "load_tasks_model.model": "--model",
}


def flag_for(param: str, func: str | None = None) -> str | None:
    """The flag for a parameter (of ``func``, when given and mapped), or None."""
    if func is not None and f"{func}.{param}" in FLAGS:
        return FLAGS[f"{func}.{param}"]
    return FLAGS.get(param)


def render_error(exc: TunesiftError) -> str:
    """The error's one line, with each parameter it names replaced by its flag."""
    text = exc.message
    for param in exc.params():
        flag = flag_for(param, exc.func)
        if flag is None:
            continue
        # the name as a whole word, not part of another name or of a flag already
        text = re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", flag, text, count=1)
    if isinstance(exc, InputError):
        text = exc.location() + text
    return text
