"""The processor's state: released with the trace, bounded by count, bytes and age."""

from __future__ import annotations

from opentelemetry.trace import INVALID_SPAN_CONTEXT

from ragprov.signals import fingerprint
from ragprov.trace_state import RetrievalRecord, StepRecord, TraceStore


def retrieval(record_id: str, *, root: bool = False, chunks: int = 2) -> RetrievalRecord:
    return RetrievalRecord(
        retrieval_set_id=record_id,
        chunk_set_hash="0" * 64,
        span_context=INVALID_SPAN_CONTEXT,
        chunk_ids=tuple(f"c{index}" for index in range(chunks)),
        fingerprints=tuple(fingerprint(f"chunk number {index} text") for index in range(chunks)),
        qualities=(None,) * chunks,
        embeddings=None,
        set_signals=None,
        is_trace_root=root,
    )


def step(record_id: str, *, root: bool = False) -> StepRecord:
    return StepRecord(record_id, fingerprint("an answer"), ("r",), is_trace_root=root)


def test_ending_a_trace_releases_its_records() -> None:
    store = TraceStore()
    store.add_retrieval(1, retrieval("r"))
    store.add_step(1, step("s"))
    store.end_trace(1)
    assert (store.trace_count, store.record_count, store.size_bytes) == (0, 0, 0)


def test_trace_root_records_outlive_their_trace_until_they_age_out() -> None:
    store = TraceStore(ttl_seconds=60)
    store.add_retrieval(1, retrieval("r", root=True))
    store.end_trace(1)
    assert store.retrieval("r") is not None
    store.enforce_bounds(now=10**9)
    assert store.retrieval("r") is None
    assert store.size_bytes == 0


def test_traces_are_bounded_by_count_least_recently_used_first() -> None:
    store = TraceStore(max_traces=2)
    for trace_id in (1, 2):
        store.add_retrieval(trace_id, retrieval(f"r{trace_id}"))
    store.trace(1)  # touch: trace 2 is now the least recently used
    store.add_retrieval(3, retrieval("r3"))
    assert store.retrieval("r2") is None
    assert store.retrieval("r1") is not None
    assert store.stats.traces_evicted_by_count == 1


def test_traces_are_bounded_by_bytes() -> None:
    one = retrieval("x").size_bytes()
    store = TraceStore(max_bytes=one * 2)
    for trace_id in range(4):
        store.add_retrieval(trace_id, retrieval(f"r{trace_id}"))
    assert store.size_bytes <= one * 2
    assert store.stats.traces_evicted_by_size == 2


def test_a_trace_whose_root_never_ends_is_evicted_after_the_ttl() -> None:
    store = TraceStore(ttl_seconds=5)
    store.add_retrieval(1, retrieval("r"))
    store.enforce_bounds(now=10**9)
    assert (store.trace_count, store.record_count, store.size_bytes) == (0, 0, 0)
    assert store.stats.traces_evicted_by_age == 1


def test_re_adding_a_record_does_not_double_count_bytes() -> None:
    store = TraceStore()
    store.add_retrieval(1, retrieval("r"))
    size = store.size_bytes
    store.add_retrieval(1, retrieval("r"))
    assert store.size_bytes == size


def test_a_record_of_the_same_set_id_replaces_the_first_and_the_trace_lists_it_once() -> None:
    """Two spans of one retrieval call share a set id: the later record (ragprov's) wins."""
    store = TraceStore()
    store.add_retrieval(1, retrieval("r", chunks=0))
    store.add_retrieval(1, retrieval("r", chunks=3))
    record = store.retrieval("r")
    assert record is not None
    assert len(record.chunk_ids) == 3
    assert store.trace(1).retrieval_set_ids == ["r"]
    assert store.size_bytes == retrieval("r", chunks=3).size_bytes()
