"""Chunk ids, chunk set hashes and event ids: the join keys of the product.

The literal hashes here are the test vectors of docs/ids.md, computed independently with
`printf '…' | sha256sum`.
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata
import uuid

import pytest

from ragprov import ids
from ragprov.semconv.attributes import RagChunkIdMethodValues

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
CAFE_AU_LAIT = "793e7643ce558259f6fe71f9ecaaf268acbcd011a2bb4c7f561df05a133d4d08"


@pytest.mark.parametrize(
    ("chunk_ids", "expected"),
    [
        (["a", "b", "c"], "ea7fb08b7a2dc4619ffb7c7bb38d95a2047935fa165d71b12efd3852a2e6d0cc"),
        (
            ["doc-2#0", "doc-1#0", "doc-1#1"],
            "c0723039fba05df861a7653bf8e684571aa9d06ee54e7c3ae575122abe2acff8",
        ),
        (
            ["東京", "zebra", "Ångström"],
            "eb386689a05e1d20bb64c553170bf39e4f219787dd04619a07f107e57408c496",
        ),
        ([], EMPTY_SHA256),
    ],
    ids=["ascii", "unsorted", "unicode", "empty"],
)
def test_chunk_set_hash_matches_test_vectors(chunk_ids: list[str], expected: str) -> None:
    assert ids.chunk_set_hash(chunk_ids) == expected


def test_chunk_set_hash_ignores_order() -> None:
    assert ids.chunk_set_hash(["c", "a", "b"]) == ids.chunk_set_hash(["a", "b", "c"])


def test_chunk_set_hash_ignores_duplicates() -> None:
    assert ids.chunk_set_hash(["a", "b", "a", "c", "c"]) == ids.chunk_set_hash(["a", "b", "c"])


def test_chunk_set_hash_accepts_any_iterable() -> None:
    assert ids.chunk_set_hash(iter(("b", "a"))) == ids.chunk_set_hash(["a", "b"])


def test_chunk_set_hash_differs_for_different_sets() -> None:
    assert ids.chunk_set_hash(["a", "b"]) != ids.chunk_set_hash(["a", "b", "c"])


@pytest.mark.parametrize(
    "text",
    [
        "Café au lait",
        "Cafe\u0301 au lait",  # NFD: e + combining acute accent
        "  Café   au\n\tlait  ",
        "Café\u00a0au lait",  # no-break space is whitespace too
        "Café au lait".encode(),
    ],
    ids=["nfc", "nfd", "whitespace", "nbsp", "bytes"],
)
def test_content_hash_normalises_unicode_and_whitespace(text: str | bytes) -> None:
    assert ids.content_hash(text) == CAFE_AU_LAIT


def test_content_hash_keeps_case_and_punctuation() -> None:
    assert ids.content_hash("café au lait") != CAFE_AU_LAIT
    assert ids.content_hash("Café au lait.") != CAFE_AU_LAIT


def test_content_hash_of_undecodable_bytes_is_defined() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", ids.content_hash(b"\xff\xfe chunk"))


def test_query_hash_uses_the_content_normalisation() -> None:
    assert ids.query_hash("What is  X? ") == ids.query_hash("What is X?")
    assert ids.query_hash("what is x?") != ids.query_hash("What is X?")


def test_resolve_chunk_id_prefers_metadata() -> None:
    identity = ids.resolve_chunk_id(
        text="Café au lait", metadata={"chunk_id": "doc-7#3"}, store_id="uuid-1"
    )
    assert identity == ids.ChunkIdentity("doc-7#3", RagChunkIdMethodValues.METADATA)


def test_resolve_chunk_id_accepts_integer_metadata_id() -> None:
    identity = ids.resolve_chunk_id(text="x", metadata={"chunk_id": 42})
    assert identity == ids.ChunkIdentity("42", RagChunkIdMethodValues.METADATA)


@pytest.mark.parametrize("bad_id", ["", "   ", None, True, 1.5, ["a"]])
def test_resolve_chunk_id_falls_back_to_content_hash_when_metadata_id_unusable(
    bad_id: object,
) -> None:
    identity = ids.resolve_chunk_id(
        text="Café au lait", metadata={"chunk_id": bad_id}, store_id="uuid-1"
    )
    assert identity == ids.ChunkIdentity(CAFE_AU_LAIT, RagChunkIdMethodValues.CONTENT_HASH)


@pytest.mark.parametrize("text", [None, "", " \n\t "])
def test_resolve_chunk_id_falls_back_to_store_id_without_text(text: str | None) -> None:
    identity = ids.resolve_chunk_id(text=text, metadata=None, store_id=17)
    assert identity == ids.ChunkIdentity("17", RagChunkIdMethodValues.STORE_ID)


def test_resolve_chunk_id_is_none_when_nothing_identifies_the_chunk() -> None:
    assert ids.resolve_chunk_id(text=None, metadata={"other": 1}, store_id=None) is None


def test_resolve_chunk_id_ignores_metadata_that_is_not_a_mapping() -> None:
    identity = ids.resolve_chunk_id(text="Café au lait", metadata=["chunk_id"])  # type: ignore[arg-type]
    assert identity is not None
    assert identity.method is RagChunkIdMethodValues.CONTENT_HASH


@pytest.mark.parametrize("factory", [ids.new_retrieval_set_id, ids.new_step_id])
def test_event_ids_are_uuid7(factory: object) -> None:
    assert callable(factory)
    parsed = uuid.UUID(factory())
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_event_ids_are_unique_and_time_ordered_within_a_thread() -> None:
    generated = [ids.new_retrieval_set_id() for _ in range(10_000)]
    assert len(set(generated)) == len(generated)
    assert generated == sorted(generated)


def test_event_ids_are_unique_across_threads() -> None:
    results: list[list[str]] = [[] for _ in range(4)]

    def worker(out: list[str]) -> None:
        out.extend(ids.new_step_id() for _ in range(2_000))

    threads = [threading.Thread(target=worker, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [value for out in results for value in out]
    assert len(set(everything)) == 8_000
    for out in results:
        assert out == sorted(out)


def _random_bits(event_id: str) -> int:
    """The 62 random bits of a UUIDv7 (``rand_b``)."""
    return uuid.UUID(event_id).int & ((1 << 62) - 1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_does_not_reuse_the_parents_random_bytes() -> None:
    ids.new_retrieval_set_id()  # the parent now holds buffered random bytes for later ids
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its ids through the pipe, then leave at once
        try:
            os.close(read_end)
            os.write(write_end, ",".join(ids.new_retrieval_set_id() for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    parent_ids = [ids.new_retrieval_set_id() for _ in range(8)]
    with os.fdopen(read_end, "rb") as pipe:
        child_ids = pipe.read().decode().split(",")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(child_ids) == 8
    assert not {_random_bits(value) for value in child_ids} & {
        _random_bits(value) for value in parent_ids
    }


WHITESPACE = [chr(code) for code in range(0x3100) if chr(code).isspace()] + ["\u3000", "\ufeff"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  leading and trailing\t\n",
        "e\u0301 composed by NFC",
        "zero\u200bwidth is not whitespace",
        *(f"a{space}b{space}{space}c{space}" for space in WHITESPACE),
        b"bytes \xff with an undecodable byte",
    ],
)
def test_normalisation_folds_exactly_the_regex_whitespace(text: str | bytes) -> None:
    """str.split() is used for speed; it must fold exactly what \\s+ folds."""
    decoded = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    expected = re.sub(r"\s+", " ", unicodedata.normalize("NFC", decoded)).strip()
    assert ids.normalise_text(text) == expected
