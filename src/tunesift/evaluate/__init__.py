"""Evidence that a selection helps: pre-fine-tune on it, then measure the target (issue 5).

``task`` holds labeled target tasks (train/test texts and labels); ``fast`` the add-k n-gram
view (seconds); ``encoder`` masked-LM pre-fine-tuning of a pretrained encoder then a classifier;
``causal`` continued causal-LM training then perplexity and accuracy; ``bench`` the benchmark
(``bench.run_bench``). ``evaluate(selections, task, mode=...)`` (``harness``) is ``tunesift
evaluate`` as a Python call:

    from tunesift.evaluate import evaluate, load_task, read_texts

    task = load_task("target_train.jsonl", "target_test.jsonl")
    report = evaluate({"gotd": read_texts(["gotd.jsonl"])}, task, mode="fast", base=pool_texts)
    print(report.table())
"""

from tunesift.evaluate.harness import BASELINE, Report, evaluate, load_task, read_texts
from tunesift.evaluate.task import LabeledTask

__all__ = ["BASELINE", "LabeledTask", "Report", "evaluate", "load_task", "read_texts"]
