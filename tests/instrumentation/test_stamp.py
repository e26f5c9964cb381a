"""ragprov.stamp: chunk ids and heuristic quality stamped into ingestion metadata."""

from __future__ import annotations

import pytest

from ragprov import ids
from ragprov.model import ChunkProvenance
from ragprov.quality import score_chunk
from ragprov.stamping import HEURISTIC_QUALITY_KEY, stamp

TEXT = "Solar panels convert sunlight into electricity. They work best facing south."


def test_stamps_content_hash_and_heuristic_quality() -> None:
    (metadata,) = stamp([TEXT])

    assert metadata == {
        "chunk_id": ids.content_hash(TEXT),
        HEURISTIC_QUALITY_KEY: round(score_chunk(TEXT), 4),
    }
    assert 0.0 <= metadata[HEURISTIC_QUALITY_KEY] <= 1.0


def test_keeps_existing_values_and_does_not_mutate_the_input() -> None:
    given = {"chunk_id": "mine", HEURISTIC_QUALITY_KEY: 0.5, "source_document_id": "a.pdf"}
    (metadata,) = stamp([TEXT], [given])

    assert metadata == given
    assert metadata is not given
    assert stamp([TEXT], [{"topic": "x"}]) == [
        {
            "topic": "x",
            "chunk_id": ids.content_hash(TEXT),
            HEURISTIC_QUALITY_KEY: pytest.approx(score_chunk(TEXT), abs=1e-4),
        }
    ]


def test_store_id_stands_in_for_empty_text() -> None:
    blank, missing = stamp(["   ", None], ids=["id-1", 7])

    assert blank["chunk_id"] == "id-1"
    assert HEURISTIC_QUALITY_KEY in blank  # a blank text still gets a (low) score
    assert missing == {"chunk_id": "7"}
    assert stamp([None]) == [{}]


def test_retrieval_reads_the_stamped_id_back() -> None:
    (metadata,) = stamp([TEXT])
    chunk = ChunkProvenance.from_store(rank=1, text="other text", metadata=metadata)

    assert chunk is not None
    assert chunk.chunk_id == ids.content_hash(TEXT)
    assert chunk.chunk_id_method == "metadata"


def test_length_mismatch_and_single_text_are_rejected() -> None:
    with pytest.raises(ValueError, match="metadatas has 2 entries for 1 documents"):
        stamp([TEXT], [None, None])
    with pytest.raises(ValueError, match="ids has 0 entries"):
        stamp([TEXT], ids=[])
    with pytest.raises(TypeError):
        stamp(TEXT)  # type: ignore[arg-type]
