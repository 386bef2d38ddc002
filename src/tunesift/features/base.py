"""The Featurizer contract: texts in, a float32 matrix out, with a stable id for caching."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Featurizer(Protocol):
    """Maps texts to vectors.

    ``id`` names the featurizer, its model and its parameters; it is part of the cache key, so
    two featurizers that could give different vectors never share an id. A featurizer may also set
    ``piece_size``, the number of documents it wants per ``encode`` call when a corpus is
    featurized (default: four batches, so that progress moves for slow encoders).
    """

    id: str

    @property
    def dim(self) -> int: ...

    def encode(
        self, texts: list[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """Return an array of shape (len(texts), dim), dtype float32."""
        ...
