"""A deterministic hashing embedder, so the demo and the tests need no model download.

Each distinctive token (see :mod:`ragprov.signals.tokens`) is hashed into one of ``dimensions``
buckets with a sign; the vector is L2-normalised. Texts that share distinctive words get a
positive cosine similarity. It is a real embedding of word overlap, not a semantic model: good
enough to rank a small corpus, and the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ragprov.signals.tokens import distinctive_tokens, token_hash

DEFAULT_DIMENSIONS = 256


class HashingEmbedder:
    """Maps texts to L2-normalised float32 vectors of word-overlap features."""

    def __init__(self, dimensions: int = DEFAULT_DIMENSIONS) -> None:
        if dimensions < 8:
            raise ValueError(f"dimensions must be at least 8, got {dimensions}")
        self.dimensions = dimensions

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One row per text; a text without distinctive tokens gets the zero vector."""
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in distinctive_tokens(text):
                digest = token_hash(token)
                vectors[row, digest % self.dimensions] += 1.0 if digest >> 63 else -1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, norms, out=vectors, where=norms > 0)
        return vectors

    def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        """Plain lists, the shape vector-store clients accept for ``embeddings=``."""
        return [[float(value) for value in vector] for vector in self.embed(texts)]
