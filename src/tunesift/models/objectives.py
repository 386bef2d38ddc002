"""Training objectives shared by the models: BERT's masked LM and next-token cross-entropy.

- ``mask_tokens``: BERT's 80/10/10 corruption (Devlin et al. 2019, Sec. 3.1), from a seeded
  generator; ``masked_lm_batch`` pads rows and corrupts them;
- ``masked_lm_loss``: mean cross-entropy over the masked positions;
- ``causal_lm_batch`` / ``causal_lm_loss``: right-padded rows, mean next-token cross-entropy over
  the real tokens (the model shifts the labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tunesift.models.training import pad_rows


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special_ids: Sequence[int],
    mask_id: int,
    vocab_size: int,
    probability: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's 80/10/10 masking, drawn from ``generator`` (CPU tensors in, CPU tensors out).

    Returns the corrupted ids and the labels (the original id where a token is to be predicted,
    -100 elsewhere). At least one eligible token per batch is chosen, so the loss is defined.
    """
    eligible = attention_mask.bool() & ~torch.isin(input_ids, torch.tensor(list(special_ids)))
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & eligible
    if not bool(chosen.any()) and bool(eligible.any()):
        where = eligible.nonzero()
        pick = where[int(torch.randint(len(where), (1,), generator=generator))]
        chosen[pick[0], pick[1]] = True
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    fate = torch.rand(input_ids.shape, generator=generator)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    out = input_ids.clone()
    out[chosen & (fate < 0.8)] = mask_id
    swap = chosen & (fate >= 0.8) & (fate < 0.9)
    out[swap] = random_ids[swap]
    return out, labels


def masked_lm_batch(
    tok: Any, rows: Sequence[list[int]], probability: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded ``rows``, corrupted by ``mask_tokens``: (input ids, attention mask, labels)."""
    ids, mask = pad_rows(rows, tok.pad_token_id)
    inp, labels = mask_tokens(
        ids, mask, tok.all_special_ids, tok.mask_token_id, len(tok), probability, gen
    )
    return inp, mask, labels


def masked_lm_loss(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy over the masked positions.

    For BERT-layout models the vocabulary head runs on the masked positions only (15% of the
    tokens): with a 384-wide encoder, the 30k-word decoder over every position would cost more
    than the encoder itself. Other layouts use the model's own loss; the value is the same.
    """
    head = getattr(model, "cls", None)
    if head is None:
        return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    h = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    chosen = labels != -100
    logits = head(h[chosen])
    return nn.functional.cross_entropy(logits.float(), labels[chosen])


def causal_lm_batch(rows: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Right-padded ids, the attention mask, and labels (-100 on padding) of a batch of rows."""
    ids, mask = pad_rows(rows, pad_id)
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def causal_lm_loss(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean next-token cross-entropy over the real tokens (the model shifts the labels)."""
    return model(input_ids=ids, attention_mask=mask, labels=labels).loss
