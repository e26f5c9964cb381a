"""Provenance spec models: building from store results, span attributes, validation, schemas."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from ragprov import ids
from ragprov.model import (
    ChunkProvenance,
    RetrievalSetEnvelope,
    TransformationAnchor,
    json_schemas,
)
from ragprov.semconv.attributes import (
    RagChunkIdMethodValues,
    RagLineageMethodValues,
    RagRetrievalMethodValues,
)
from ragprov.signals.metadata import ChunkQuality

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def stamped_chunk(rank: int, chunk_id: str, score: float | None = 0.5) -> ChunkProvenance:
    chunk = ChunkProvenance.from_store(
        rank=rank, text=f"text {chunk_id}", metadata={"chunk_id": chunk_id}, score=score
    )
    assert chunk is not None
    return chunk


def test_from_store_reads_identity_origin_and_quality() -> None:
    chunk = ChunkProvenance.from_store(
        rank=2,
        text="Revenue grew to $12.4M in Q3.",
        metadata={
            "chunk_id": "report#4",
            "source_document_id": "report-2026-q3",
            "semantic_density": 0.9,
            "completeness": "0.7",
            "freshness_status": "Stale",
        },
        store_id="4f1c",
        score=0.83,
    )
    assert chunk == ChunkProvenance(
        chunk_id="report#4",
        chunk_id_method=RagChunkIdMethodValues.METADATA,
        rank=2,
        score=0.83,
        source_document_id="report-2026-q3",
        store_id="4f1c",
        quality=ChunkQuality(
            semantic_density=0.9,
            completeness=0.7,
            freshness_status="stale",
            source_document_id="report-2026-q3",
        ),
    )


def test_from_store_uses_content_hash_without_stamped_id() -> None:
    chunk = ChunkProvenance.from_store(rank=1, text="Revenue grew to $12.4M in Q3.")
    assert chunk is not None
    assert chunk.chunk_id == "1d13604b1b9b7f7b9217deb394e7c91b2f24bf9a531a78c535a2d5227ca44d33"
    assert chunk.chunk_id_method is RagChunkIdMethodValues.CONTENT_HASH


@pytest.mark.parametrize("score", [math.nan, math.inf, "high", True, object()])
def test_from_store_drops_unusable_scores(score: object) -> None:
    chunk = ChunkProvenance.from_store(rank=1, text="x", score=score)  # type: ignore[arg-type]
    assert chunk is not None
    assert chunk.score is None


def test_from_store_returns_none_without_any_identity() -> None:
    assert ChunkProvenance.from_store(rank=1, text=None, metadata=None, store_id=None) is None


def test_from_store_never_raises_on_hostile_metadata() -> None:
    class Hostile(dict[str, object]):
        def get(self, key: str, default: object = None) -> object:
            raise RuntimeError("boom")

        def __getitem__(self, key: str) -> object:
            raise RuntimeError("boom")

    chunk = ChunkProvenance.from_store(rank=1, text="x", metadata=Hostile(chunk_id="a"))
    assert chunk is not None
    assert chunk.quality == ChunkQuality()


def test_build_computes_set_hash_and_query_hash() -> None:
    chunks = [stamped_chunk(1, "b"), stamped_chunk(2, "a")]
    envelope = RetrievalSetEnvelope.build(chunks, query_text="What is X?", timestamp=T0)
    assert envelope.chunk_set_hash == ids.chunk_set_hash(["a", "b"])
    assert envelope.query_hash == ids.query_hash("What is X?")
    assert envelope.chunk_ids == ("b", "a")


def test_build_gives_each_event_its_own_id() -> None:
    chunks = [stamped_chunk(1, "a")]
    first = RetrievalSetEnvelope.build(chunks)
    second = RetrievalSetEnvelope.build(chunks)
    assert first.retrieval_set_id != second.retrieval_set_id
    assert first.chunk_set_hash == second.chunk_set_hash


def test_envelope_rejects_a_hash_that_does_not_match_its_chunks() -> None:
    with pytest.raises(ValidationError, match="does not match the chunks"):
        RetrievalSetEnvelope(
            retrieval_set_id="r1",
            chunk_set_hash=ids.chunk_set_hash(["other"]),
            timestamp=T0,
            chunks=(stamped_chunk(1, "a"),),
        )


def test_envelope_rejects_a_malformed_hash() -> None:
    with pytest.raises(ValidationError, match="chunk_set_hash"):
        RetrievalSetEnvelope(retrieval_set_id="r1", chunk_set_hash="abc", timestamp=T0)


def test_envelope_round_trips_through_json() -> None:
    envelope = RetrievalSetEnvelope.build(
        [stamped_chunk(1, "a", 0.9), stamped_chunk(2, "b", None)],
        query_text="q",
        retrieval_method=RagRetrievalMethodValues.DENSE,
        data_source_id="handbook",
        step_id="step-1",
        timestamp=T0,
    )
    assert RetrievalSetEnvelope.model_validate_json(envelope.model_dump_json()) == envelope


def test_span_attributes_of_a_full_envelope() -> None:
    chunks = [
        ChunkProvenance.from_store(
            rank=1,
            text="one",
            metadata={"chunk_id": "a", "source_document_id": "doc-1"},
            score=0.9,
        ),
        ChunkProvenance.from_store(rank=2, text="two", score=0.7),
    ]
    envelope = RetrievalSetEnvelope.build(
        [chunk for chunk in chunks if chunk is not None],
        query_text="q",
        retrieval_method=RagRetrievalMethodValues.DENSE,
        step_id="step-1",
        retrieval_set_id="set-1",
        timestamp=T0,
    )
    attributes = envelope.span_attributes()
    assert attributes.pop("rag.retrieval_set_id") == "set-1"
    assert attributes.pop("rag.chunk_set_hash") == envelope.chunk_set_hash
    assert attributes.pop("rag.chunk_ids") == ["a", ids.content_hash("two")]
    # Mixed methods report the weakest one present.
    assert attributes.pop("rag.chunk_id_method") == "content_hash"
    assert attributes.pop("rag.chunk_scores") == [0.9, 0.7]
    assert attributes.pop("rag.source_document_ids") == ["doc-1", ""]
    assert attributes.pop("rag.retrieval_method") == "dense"
    assert attributes.pop("rag.query_hash") == ids.query_hash("q")
    assert attributes.pop("rag.step_id") == "step-1"
    assert attributes == {}


def test_span_attributes_omit_scores_when_any_chunk_lacks_one() -> None:
    envelope = RetrievalSetEnvelope.build([stamped_chunk(1, "a", 0.9), stamped_chunk(2, "b", None)])
    assert "rag.chunk_scores" not in envelope.span_attributes()


def test_span_attributes_of_an_empty_retrieval() -> None:
    envelope = RetrievalSetEnvelope.build([], retrieval_set_id="set-1", timestamp=T0)
    assert envelope.span_attributes() == {
        "rag.retrieval_set_id": "set-1",
        "rag.chunk_set_hash": ids.chunk_set_hash([]),
        "rag.chunk_ids": [],
        "rag.retrieval_method": "unknown",
    }


def test_anchor_span_attributes() -> None:
    anchor = TransformationAnchor(
        step_id="step-2",
        transformation_type="generation",
        ancestor_retrieval_set_ids=("set-1", "set-2"),
        ancestor_chunk_set_hashes=(ids.chunk_set_hash(["a"]), ids.chunk_set_hash(["b"])),
        lineage_method=RagLineageMethodValues.CONTENT_MATCH,
    )
    attributes = anchor.span_attributes()
    assert attributes.pop("rag.step_id") == "step-2"
    assert attributes.pop("rag.transformation_type") == "generation"
    assert attributes.pop("rag.ancestor_retrieval_set_ids") == ["set-1", "set-2"]
    assert attributes.pop("rag.ancestor_chunk_set_hashes") == [
        ids.chunk_set_hash(["a"]),
        ids.chunk_set_hash(["b"]),
    ]
    assert attributes.pop("rag.lineage_method") == "content_match"
    assert attributes == {}


def test_anchor_accepts_custom_transformation_types() -> None:
    anchor = TransformationAnchor(step_id="s", transformation_type="translate")
    assert anchor.span_attributes() == {"rag.step_id": "s", "rag.transformation_type": "translate"}


def test_models_are_frozen() -> None:
    chunk = stamped_chunk(1, "a")
    with pytest.raises(ValidationError):
        chunk.rank = 3  # type: ignore[misc]


def test_chunk_schema_bounds_quality_scores() -> None:
    schema = json_schemas()["ChunkProvenance.schema.json"]
    quality = schema["$defs"]["ChunkQuality"]["properties"]["completeness"]
    assert {"maximum": 1.0, "minimum": 0.0, "type": "number"} in quality["anyOf"]


def test_spec_schemas_on_disk_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export_spec.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_spec_schemas_are_valid_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    for name in json_schemas():
        schema = json.loads((ROOT / "docs" / "spec" / name).read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
