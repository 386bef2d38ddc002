"""Downstream accuracy in causal mode: a linear probe on the pre-fine-tuned model's pooled states.

After continued training on a selection (``causal.train_causal``), issue 14 asks for the target's
*labeled* metric beside perplexity: fit the target's train split, then accuracy and macro-F1 on
its test split. The method here is "a classification head on pooled states" with the body
frozen (``CausalConfig.downstream = "probe"``):

1. **Features.** One forward pass per text; the feature of a text is the masked mean of the
   model's last hidden state (after the final norm, the input of the LM head) over the text's
   own tokens. Rows are right-padded by ``pad_rows`` (our own padding, whatever the tokenizer's
   ``padding_side``), so a causal model's states at real positions never see the pads, and the
   mask removes the pads from the mean (the DV4LLM notebooks' mean-pooling pitfall, DESIGN.md
   Sec. 2). The same pass gives each text's summed next-token NLL from the LM head's logits, so
   the test texts are read once for both perplexity and features (``forward_texts``).
2. **Standardization** on the train split only (per-dimension mean and standard deviation;
   a constant dimension is left unscaled), applied to the test split.
3. **Head.** Multinomial logistic regression with an L2 penalty, float64, fitted by L-BFGS
   (scikit-learn's ``LogisticRegression``; two labels give its binary logistic, the same model):
   deterministic, no seed involved. ``C`` (inverse penalty) is ``CausalConfig.probe_c`` when
   set; by default it is chosen once per run by stratified ``PROBE_FOLDS``-fold cross-validation
   on the train split (unshuffled folds, so no seed) over ``PROBE_C_GRID``: the highest mean
   held-out accuracy, ties to the smaller C (SentEval's probe protocol, Conneau & Kiela 2018).
   When the smallest train label has fewer than 2 texts no fold can hold it out, and C = 1.

Why frozen: a full fine-tune of the 135M body per run is too slow on 2 CPU cores and adds its
own seed noise on top of the selection's, which the paired statistics must then average away.
The probe measures what pre-fine-tuning put into the representation, the quantity the
selection can change. A LoRA-plus-head fine-tune (``downstream="finetune"``) for the GPU preset
is not built (docs/evaluation.md).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tunesift.errors import TunesiftError
from tunesift.evaluate.encoder import macro_f1
from tunesift.models.training import pad_rows, tokenize_rows

logger = logging.getLogger(__name__)

DOWNSTREAMS = ("probe", "none")
PROBE_C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
PROBE_FOLDS = 5
PROBE_MAX_ITER = 5000


@dataclass
class TextPass:
    """What one forward pass over token rows gives, per row.

    Attributes
    ----------
    nll : list of float
        Summed next-token negative log-likelihood over the row's text tokens 2..n (float64 sums
        of float32 log-probabilities): ``-sum_{t=2..n} log p(x_t | x_<t)``.
    tokens : list of int
        How many tokens each ``nll`` sums (``n - 1``; 0 for a text of fewer than 2 tokens).
    features : ndarray or None
        ``(rows, hidden)`` float64: the masked mean of the last hidden state over the text tokens.
    last_logp : ndarray or None
        ``(rows, len(last_ids))`` float64: ``log p(id | row)`` at each row's last position.
    """

    nll: list[float]
    tokens: list[int]
    features: np.ndarray | None = None
    last_logp: np.ndarray | None = None


def forward_texts(
    model: nn.Module,
    rows: Sequence[list[int]],
    n_text: Sequence[int],
    pad_id: int,
    batch_size: int,
    device: torch.device,
    pool: bool = True,
    last_ids: Sequence[int] | None = None,
) -> TextPass:
    """One batched, right-padded forward pass: per-text NLL, pooled states, last-position scores.

    Parameters
    ----------
    model : causal LM (transformers or peft)
        Called with ``output_hidden_states`` when ``pool``; put in eval mode by the caller.
    rows : sequence of token-id lists
        Each row is a text's tokens, possibly followed by more (a prompt suffix): a causal model's
        predictions and states at the text's positions do not see what follows.
    n_text : sequence of int
        How many leading tokens of each row are the text (scored and pooled).
    pad_id : int
    batch_size : int
    device : torch.device
    pool : bool
        Compute ``features`` (the masked mean of the last hidden state over the text tokens).
    last_ids : sequence of int or None
        Token ids whose log-probability at each row's last position is returned.

    Returns
    -------
    TextPass
    """
    if len(rows) != len(n_text):
        raise TunesiftError(f"{len(rows)} rows but {len(n_text)} text lengths")
    nll: list[float] = []
    tokens: list[int] = []
    feats: list[np.ndarray] = []
    last: list[np.ndarray] = []
    picks = torch.tensor(list(last_ids)) if last_ids is not None else None
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            lens = list(n_text[i : i + batch_size])
            ids, mask = pad_rows(chunk, pad_id)
            out = model(
                input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=pool
            )
            logits = out.logits
            for k, (row, n) in enumerate(zip(chunk, lens, strict=True)):
                if n >= 2:
                    # the same float32 log-softmax then float64 sum as causal.score_task did
                    logp = torch.log_softmax(logits[k, : n - 1].float(), dim=-1).cpu()
                    tgt = torch.tensor(row[1:n]).unsqueeze(-1)
                    nll.append(-float(logp.gather(-1, tgt).double().sum()))
                    tokens.append(n - 1)
                else:
                    nll.append(0.0)
                    tokens.append(0)
                if picks is not None:
                    lp = torch.log_softmax(logits[k, len(row) - 1].float(), dim=-1).cpu()
                    last.append(lp[picks].double().numpy())
            if pool:
                hidden = out.hidden_states[-1].float()
                text_mask = torch.zeros(mask.shape, dtype=hidden.dtype, device=hidden.device)
                for k, n in enumerate(lens):
                    text_mask[k, :n] = 1.0
                summed = (hidden * text_mask.unsqueeze(-1)).sum(dim=1)
                counts = text_mask.sum(dim=1, keepdim=True).clamp(min=1.0)
                feats.append((summed / counts).double().cpu().numpy())
    return TextPass(
        nll=nll,
        tokens=tokens,
        features=np.concatenate(feats) if pool and feats else None,
        last_logp=np.stack(last) if picks is not None and last else None,
    )


def text_features(
    model: nn.Module, tok: Any, texts: Sequence[str], max_length: int, batch_size: int,
    device: torch.device,
) -> np.ndarray:  # fmt: skip
    """``(len(texts), hidden)`` float64 pooled features of ``texts``, each cut to ``max_length``."""
    rows = tokenize_rows(tok, texts, max_length)
    model.eval()
    feats = forward_texts(model, rows, [len(r) for r in rows], tok.pad_token_id, batch_size,
                          device, pool=True).features  # fmt: skip
    assert feats is not None
    return feats


@dataclass
class ProbeResult:
    """A fitted probe's test predictions and how its C was chosen."""

    pred: np.ndarray
    c: float
    cv_accuracy: dict[str, float] = field(default_factory=dict)
    folds: int = 0
    n_iter: int = 0


def _standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [(a - mean) / std for a in (train, *others)]


def _fit_lr(x: np.ndarray, y: np.ndarray, c: float):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=float(c), solver="lbfgs", max_iter=PROBE_MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    if int(np.max(clf.n_iter_)) >= PROBE_MAX_ITER:
        logger.warning("probe (C=%g) stopped at %d L-BFGS iterations", c, PROBE_MAX_ITER)
    return clf


def fit_probe(
    train_x: np.ndarray,
    train_y: Sequence[int] | np.ndarray,
    test_x: np.ndarray,
    c: float | None = None,
    folds: int = PROBE_FOLDS,
    grid: Sequence[float] = PROBE_C_GRID,
) -> ProbeResult:
    """Standardize on the train split, fit L2 multinomial logistic regression, predict the test.

    Parameters
    ----------
    train_x, test_x : ndarray
        ``(n, d)`` features (cast to float64).
    train_y : sequence of int
        Label indices of the train rows (at least two distinct).
    c : float or None
        The inverse L2 strength; None chooses it from ``grid`` by stratified ``folds``-fold
        cross-validation on the train split (unshuffled; best mean accuracy, ties to the
        smaller C), or 1.0 when the rarest train label has fewer than 2 texts.

    Returns
    -------
    ProbeResult
        ``pred``: label indices for the test rows.
    """
    x = np.asarray(train_x, dtype=np.float64)
    t = np.asarray(test_x, dtype=np.float64)
    y = np.asarray(train_y, dtype=np.int64)
    if x.ndim != 2 or t.ndim != 2 or x.shape[1] != t.shape[1] or len(x) != len(y):
        raise TunesiftError(
            f"probe features disagree: train {x.shape}, {len(y)} labels, test {t.shape}"
        )
    if len(np.unique(y)) < 2:
        raise TunesiftError("the probe needs train texts of at least two labels")
    if not (np.isfinite(x).all() and np.isfinite(t).all()):
        raise TunesiftError("the probe's features hold NaN or infinity (a diverged model?)")
    if c is not None and not c > 0:
        raise TunesiftError(f"probe_c must be positive, got {c}")
    cv: dict[str, float] = {}
    k = min(int(folds), int(np.bincount(y)[np.unique(y)].min()))
    if c is None and k >= 2:
        from sklearn.model_selection import StratifiedKFold

        splits = list(StratifiedKFold(n_splits=k, shuffle=False).split(x, y))
        best = -1.0
        for cand in sorted(grid):
            accs = []
            for tr, va in splits:
                xtr, xva = _standardize(x[tr], x[va])
                accs.append(float((_fit_lr(xtr, y[tr], cand).predict(xva) == y[va]).mean()))
            cv[f"{cand:g}"] = float(np.mean(accs))
            if cv[f"{cand:g}"] > best:  # strict: ties keep the smaller C
                best, c = cv[f"{cand:g}"], float(cand)
    chosen = 1.0 if c is None else float(c)
    xs, ts = _standardize(x, t)
    clf = _fit_lr(xs, y, chosen)
    return ProbeResult(
        pred=clf.predict(ts).astype(np.int64),
        c=chosen,
        cv_accuracy=cv,
        folds=k if cv else 0,
        n_iter=int(np.max(clf.n_iter_)),
    )


def probe_task(
    model: nn.Module,
    tok: Any,
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    test_features: np.ndarray,
    test_labels: Sequence[str],
    labels: Sequence[str],
    max_length: int,
    batch_size: int,
    device: torch.device,
    c: float | None = None,
) -> dict[str, Any]:
    """Pool the train texts through ``model``, fit the probe, score the test split.

    ``test_features`` come from the pass that also gave the test perplexity (``forward_texts``).

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1``, ``pred`` and ``correct`` (lists, one per test text, label
        indices into ``labels``), ``c``, ``cv_accuracy``, ``folds``, ``n_iter``.
    """
    if not train_texts:
        raise TunesiftError("the downstream probe needs the task's labeled train split")
    index = {lab: j for j, lab in enumerate(labels)}
    train_x = text_features(model, tok, train_texts, max_length, batch_size, device)
    fit = fit_probe(train_x, [index[lab] for lab in train_labels], test_features, c=c)
    y = np.array([index[lab] for lab in test_labels], dtype=np.int64)
    correct = (fit.pred == y).astype(np.int64)
    return {
        "accuracy": float(correct.mean()),
        "macro_f1": macro_f1(y, fit.pred),
        "pred": [int(p) for p in fit.pred],
        "correct": [int(v) for v in correct],
        "c": fit.c,
        "cv_accuracy": fit.cv_accuracy,
        "folds": fit.folds,
        "n_iter": fit.n_iter,
    }
