"""Stamp chunk metadata at ingestion: a stable ``chunk_id`` and a heuristic quality score.

Call it on the chunks you are about to write to a vector store and store the returned metadata
with them::

    metadatas = ragprov.stamp(texts, metadatas, ids=ids)
    collection.add(ids=ids, documents=texts, metadatas=metadatas, embeddings=...)

* ``chunk_id`` — kept when the metadata already has one; otherwise the content hash of the text
  (:func:`ragprov.ids.content_hash`), or the store id when the text is empty. Retrieval spans then
  report ``rag.chunk_id_method = metadata`` and the id survives re-embedding, re-indexing or a
  move to another store.
* ``heuristic_quality`` (:data:`HEURISTIC_QUALITY_KEY`) — :func:`ragprov.quality.score_chunk` of
  the text, in [0, 1], rounded to 4 decimals; kept when already present. It is deliberately not
  written under ``semantic_density`` / ``completeness`` / ``faithfulness``: those are measured
  pre-ingestion scores (``rag.quality_method = metadata``), while this is the same intrinsic
  heuristic ragprov falls back to at retrieval time (``rag.quality_method = heuristic``). Use it to
  gate chunks before embedding them (e.g. drop chunks below 0.6).

The input metadata is not modified: new dictionaries are returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ragprov import ids as chunk_ids
from ragprov.quality import score_chunk

HEURISTIC_QUALITY_KEY = "heuristic_quality"


def stamp(
    documents: Sequence[str | None],
    metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ids: Sequence[object] | None = None,
) -> list[dict[str, Any]]:
    """One metadata dictionary per document, with ``chunk_id`` and ``heuristic_quality``.

    ``metadatas`` and ``ids``, when given, must have one entry per document (``ValueError``
    otherwise). A document without text and without an id gets no ``chunk_id``.
    """
    if isinstance(documents, (str, bytes)):
        raise TypeError("documents must be a sequence of texts, not a single text")
    count = len(documents)
    for name, values in (("metadatas", metadatas), ("ids", ids)):
        if values is not None and len(values) != count:
            raise ValueError(f"{name} has {len(values)} entries for {count} documents")
    stamped: list[dict[str, Any]] = []
    for index, text in enumerate(documents):
        given = metadatas[index] if metadatas is not None else None
        metadata: dict[str, Any] = dict(given) if given is not None else {}
        if chunk_ids.chunk_id_from_metadata(metadata) is None:
            identity = chunk_ids.resolve_chunk_id(
                text=text, store_id=ids[index] if ids is not None else None
            )
            if identity is not None:
                metadata[chunk_ids.CHUNK_ID_METADATA_KEY] = identity.chunk_id
        if isinstance(text, str) and HEURISTIC_QUALITY_KEY not in metadata:
            metadata[HEURISTIC_QUALITY_KEY] = round(score_chunk(text), 4)
        stamped.append(metadata)
    return stamped
