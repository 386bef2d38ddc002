"""A sequence classifier on a pretrained encoder: a pooled view of its last hidden state, dropout
and one linear layer (the classifier of GOT-D's NLU setting, and of BERT's fine-tuning, Devlin et
al. 2019, Sec. 4)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from tunesift.models.training import pad_rows


class EncoderClassifier(nn.Module):
    """The encoder, a pooled view of its last hidden state, dropout and one linear layer."""

    def __init__(self, encoder: nn.Module, n_labels: int, pooling: str, dropout: float):
        """``pooling`` "mean" (masked mean over real tokens) or "cls" (the first token); the
        head's weights are drawn from torch's global RNG (seed it first), its bias zero."""
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        config: Any = encoder.config
        hidden = int(config.hidden_size)
        self.head = nn.Linear(hidden, n_labels)
        std = float(getattr(config, "initializer_range", 0.02))
        nn.init.normal_(self.head.weight, std=std)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            pooled = h[:, 0]
        else:
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


def predict_logits(
    model: EncoderClassifier,
    rows: list[list[int]],
    pad_id: int,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Logits of every row (float32, rows x classes), in eval mode, ``batch_size`` at a time."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            ids, mask = pad_rows(rows[i : i + batch_size], pad_id)
            out.append(model(ids.to(device), mask.to(device)).float().cpu())
    return torch.cat(out).numpy()
