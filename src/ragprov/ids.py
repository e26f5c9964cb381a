"""Identities of chunks, chunk sets, retrieval events and steps.

These are the join keys of the whole product, so their definitions are part of the public
contract (docs/ids.md holds the test vectors):

* **chunk id** — the chunk's metadata ``chunk_id`` when present (stamped at ingestion), else the
  content hash of its text, else the store's own id.
* **content hash** — sha256 hex of the text after Unicode NFC normalisation, every run of
  whitespace collapsed to one space, and leading/trailing whitespace stripped.
* **chunk set hash** — sha256 hex of the sorted distinct chunk ids joined by ``"\\n"`` (UTF-8).
  Sorting is by Unicode code point, which is also the byte order of UTF-8, so any language can
  recompute it. The empty set hashes the empty string.
* **retrieval set id** / **step id** — UUIDv7 strings (RFC 9562): unique per event and ordered by
  creation time, so sorting ids sorts events.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ragprov.semconv.attributes import RagChunkIdMethodValues

CHUNK_ID_METADATA_KEY = "chunk_id"


@dataclass(frozen=True, slots=True)
class ChunkIdentity:
    """A chunk's id and how it was obtained (``rag.chunk_id_method``)."""

    chunk_id: str
    method: RagChunkIdMethodValues


def normalise_text(text: str | bytes) -> str:
    """The canonical form hashed by :func:`content_hash` and :func:`query_hash`.

    Bytes are decoded as UTF-8 (undecodable bytes become U+FFFD) so that a store returning bytes
    and one returning str agree on the id.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    # str.split() splits on exactly what \s matches in a str pattern and drops the ends, so this
    # is re.sub(r"\s+", " ", text).strip(), about 4x faster (it runs per chunk on the app thread).
    return " ".join(unicodedata.normalize("NFC", text).split())


def content_hash(text: str | bytes) -> str:
    """sha256 hex of :func:`normalise_text` of ``text``."""
    return _sha256(normalise_text(text))


def _sha256(normalised: str) -> str:
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def query_hash(query_text: str | bytes) -> str:
    """``rag.query_hash``: joins identical queries without exporting them.

    Uses the same normalisation as chunk content hashes, so "What is X?" and "What  is X? "
    join, while any change of wording or case does not.
    """
    return content_hash(query_text)


def chunk_id_from_metadata(metadata: Mapping[str, Any] | None) -> str | None:
    """The stamped ``chunk_id`` from store metadata, if it is a usable id."""
    if not isinstance(metadata, Mapping):
        return None
    try:
        value = metadata.get(CHUNK_ID_METADATA_KEY)
    except Exception:  # a hostile Mapping must not break the instrumented call
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    chunk_id = str(value).strip()
    return chunk_id or None


def resolve_chunk_id(
    *,
    text: str | bytes | None = None,
    metadata: Mapping[str, Any] | None = None,
    store_id: object = None,
) -> ChunkIdentity | None:
    """Apply the chunk-id rule: metadata ``chunk_id``, else content hash, else store id.

    Returns ``None`` only when the chunk has none of the three (no stamped id, no non-blank
    text, no store id); callers then leave the chunk out of the set rather than invent an id.
    """
    stamped = chunk_id_from_metadata(metadata)
    if stamped is not None:
        return ChunkIdentity(stamped, RagChunkIdMethodValues.METADATA)
    if isinstance(text, (str, bytes)):
        normalised = normalise_text(text)
        if normalised:
            return ChunkIdentity(_sha256(normalised), RagChunkIdMethodValues.CONTENT_HASH)
    if store_id is not None and not isinstance(store_id, bool):
        store_id_text = str(store_id).strip()
        if store_id_text:
            return ChunkIdentity(store_id_text, RagChunkIdMethodValues.STORE_ID)
    return None


def chunk_set_hash(chunk_ids: Iterable[str]) -> str:
    """``rag.chunk_set_hash``: sha256 hex of the sorted distinct ids joined by newlines.

    Order and repetitions do not matter; the empty set gives sha256("") =
    ``e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855``.
    """
    joined = "\n".join(sorted(set(chunk_ids)))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


class _UUID7Generator:
    """UUIDv7 with a 12-bit counter in ``rand_a`` (RFC 9562, method 1).

    Ids made in the same millisecond by one process stay strictly increasing; when the counter
    overflows, the timestamp is advanced by one millisecond instead of breaking the order.
    Random bits come from ``os.urandom``, read for 64 ids at a time (one system call per id
    was a measurable share of a retrieval's cost); a forked child discards the parent's unused
    bytes so that the two never share them.
    """

    _BYTES_PER_ID = 10  # 2 to seed the counter, 8 for rand_b
    _IDS_PER_READ = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0
        self._random = b""
        self._offset = 0

    def discard_random(self) -> None:
        self._random, self._offset = b"", 0

    def _take(self, count: int) -> int:
        """``count`` fresh random bytes as an int (call with the lock held)."""
        if self._offset + count > len(self._random):
            self._random = os.urandom(self._BYTES_PER_ID * self._IDS_PER_READ)
            self._offset = 0
        start, self._offset = self._offset, self._offset + count
        return int.from_bytes(self._random[start : self._offset], "big")

    def __call__(self) -> str:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                # Start low in the counter space so many ids fit in one millisecond.
                self._counter = self._take(2) & 0x3FF
            else:
                self._counter += 1
                if self._counter > 0xFFF:
                    self._last_ms += 1
                    self._counter = 0
            timestamp_ms, counter = self._last_ms, self._counter
            rand_b = self._take(8) & ((1 << 62) - 1)
        value = (
            (timestamp_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
        )
        # str(uuid.UUID(int=value)) without the UUID object (this runs per retrieval on the
        # application thread); the same canonical 8-4-4-4-12 lower-case form.
        digits = f"{value:032x}"
        return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


_uuid7 = _UUID7Generator()
os.register_at_fork(after_in_child=_uuid7.discard_random)


def new_retrieval_set_id() -> str:
    """A new ``rag.retrieval_set_id`` (UUIDv7 string)."""
    return _uuid7()


def new_step_id() -> str:
    """A new ``rag.step_id`` (UUIDv7 string)."""
    return _uuid7()
