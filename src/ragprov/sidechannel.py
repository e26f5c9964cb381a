"""The in-process side channel: text that signals need but that must not become attributes.

Instrumentors call these functions on the application thread while a span is open; the
:class:`~ragprov.processor.ProvenanceSpanProcessor` takes the payload when the span ends,
fingerprints it off the request path and drops the text. Nothing here is exported.

Cheap and safe by construction:

* When no provenance processor is installed, every call returns at once and nothing is kept,
  so instrumentation without the processor never accumulates text.
* Calls on a non-recording span (sampled out, suppressed) are ignored.
* Pending payloads (spans that started but have not ended) are bounded by count, by characters
  of text and by age; the oldest are evicted first and counted in :data:`stats`.
* No function raises into the caller.

The API instrumentors use:

* :func:`record_retrieval` — on a retrieval span: the :class:`~ragprov.model.RetrievalSetEnvelope`,
  the chunk texts (rank order), optional embeddings, and the query text(s).
* :func:`record_deferred_retrieval` — the same, but as a function the processor's worker calls
  to build them from the raw rows a store returned: the vector-store instrumentors use it when
  the span goes to a provenance processor, so that the per-chunk work (chunk ids, quality, the
  set hash, the envelope) leaves the application thread. The worker then also exports the
  envelope's attributes (see :attr:`RetrievalPayload.deferred`).
* :func:`record_step_input` / :func:`record_step_output` — on an LLM/agent step span: the text
  the step read (prompt messages) and the text it produced (may be called once per streamed
  piece; pieces are concatenated).
* :func:`record_tool_result` — on a tool span: what the tool returned, or the error it raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span

from ragprov.signals.grounding import tool_provided_data

if TYPE_CHECKING:
    from ragprov.model import RetrievalSetEnvelope

_logger = logging.getLogger(__name__)

SpanKey = tuple[int, int]  # (trace_id, span_id)

DEFAULT_MAX_PENDING_SPANS = 10_000
DEFAULT_MAX_PENDING_CHARS = 64 * 1024 * 1024
DEFAULT_PENDING_TTL_SECONDS = 600.0


ResolvedRetrieval = tuple["RetrievalSetEnvelope", Sequence[str | None], Any]
"""What a deferred retrieval builds on the worker: (envelope, chunk texts in rank order parallel
to the envelope's chunks, embeddings or None)."""


class RetrievalPayload:
    """What a retrieval span hands the processor.

    Either complete (``envelope``, ``chunk_texts``, ``embeddings`` given) or *deferred*: a
    ``resolve`` function that builds them from the rows the store returned, called once, on the
    first access to any of the three (on the processor's worker). A deferred payload's envelope
    is not on the span yet: the worker exports its attributes, and ``retrieval_set_id`` (known
    when the payload is handed over) tells the processor which set the span carries.
    """

    __slots__ = (
        "_chunk_texts",
        "_embeddings",
        "_envelope",
        "_resolve",
        "deferred",
        "query_texts",
        "retrieval_set_id",
    )

    def __init__(
        self,
        envelope: RetrievalSetEnvelope | None,
        chunk_texts: tuple[str | None, ...] = (),
        embeddings: Any = None,
        query_texts: tuple[str, ...] = (),
        *,
        resolve: Callable[[], ResolvedRetrieval] | None = None,
        retrieval_set_id: str | None = None,
    ) -> None:
        self._envelope = envelope
        self.retrieval_set_id = retrieval_set_id
        self._chunk_texts = chunk_texts
        self._embeddings = embeddings
        self.query_texts = query_texts
        self._resolve = resolve
        #: True when the envelope was built by the worker (its attributes are not on the span).
        self.deferred = resolve is not None

    def _resolved(self) -> None:
        if self._resolve is not None:
            envelope, texts, embeddings = self._resolve()
            self._resolve = None  # built once; the rows it held are released with it
            self._envelope, self._embeddings = envelope, embeddings
            self._chunk_texts = tuple(text if isinstance(text, str) else None for text in texts)

    @property
    def envelope(self) -> RetrievalSetEnvelope:
        self._resolved()
        assert self._envelope is not None  # set by the constructor or by resolve
        return self._envelope

    @property
    def chunk_texts(self) -> tuple[str | None, ...]:
        self._resolved()
        return self._chunk_texts

    @property
    def embeddings(self) -> Any:
        self._resolved()
        return self._embeddings


@dataclass(slots=True)
class StepPayload:
    """What a step span (LLM call, tool call, explicit step) hands the processor."""

    input_texts: list[str] = field(default_factory=list)
    output_parts: list[str] = field(default_factory=list)
    tool_output: str | None = None
    tool_error: str | None = None
    tool_called: bool = False
    tool_provided_data: bool | None = None
    explicit_inputs: tuple[str, ...] = ()

    @property
    def output_text(self) -> str | None:
        return "".join(self.output_parts) if self.output_parts else None


Payload = RetrievalPayload | StepPayload


@dataclass(slots=True)
class SideChannelStats:
    """Counters for the pending-payload bounds (read by the processor's metrics)."""

    evicted_by_count: int = 0
    evicted_by_size: int = 0
    evicted_by_age: int = 0


@dataclass(slots=True)
class _Entry:
    payload: Payload
    chars: int
    created: float


class _Registry:
    """Pending payloads keyed by span; insertion-ordered so the oldest is evicted first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[SpanKey, _Entry] = {}
        self._chars = 0
        self.consumers = 0
        self.max_spans = DEFAULT_MAX_PENDING_SPANS
        self.max_chars = DEFAULT_MAX_PENDING_CHARS
        self.ttl_seconds = DEFAULT_PENDING_TTL_SECONDS
        self.stats = SideChannelStats()

    def step_payload(self, key: SpanKey, chars: int) -> StepPayload | None:
        """The step payload of ``key`` (created if new), with ``chars`` more text accounted.

        ``None`` when the span already holds a retrieval payload or was evicted right away.
        """
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(StepPayload(), 0, now)
            payload = entry.payload
            if not isinstance(payload, StepPayload):
                return None
            entry.chars += chars
            self._chars += chars
            self._evict(now)
            return payload if key in self._entries else None

    def put(self, key: SpanKey, payload: Payload, chars: int) -> bool:
        """Keep ``payload`` for ``key``; False when the bounds evicted it right away."""
        now = time.monotonic()
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._chars -= previous.chars
            self._entries[key] = _Entry(payload, chars, now)
            self._chars += chars
            self._evict(now)
            return key in self._entries

    def pop(self, key: SpanKey) -> Payload | None:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                return None
            self._chars -= entry.chars
            return entry.payload

    def _evict(self, now: float) -> None:
        entries = self._entries
        while entries:
            oldest_key = next(iter(entries))
            oldest = entries[oldest_key]
            if now - oldest.created > self.ttl_seconds:
                self.stats.evicted_by_age += 1
            elif len(entries) > self.max_spans:
                self.stats.evicted_by_count += 1
            elif self._chars > self.max_chars:
                self.stats.evicted_by_size += 1
            else:
                return
            del entries[oldest_key]
            self._chars -= oldest.chars

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._chars = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def pending_chars(self) -> int:
        return self._chars


_registry = _Registry()
stats = _registry.stats


def is_active() -> bool:
    """True while at least one provenance processor consumes payloads."""
    return _registry.consumers > 0


def _key(span: Span) -> SpanKey | None:
    """The registry key of a recording span whose text a processor will consume, else None."""
    if _registry.consumers <= 0:
        return None
    try:
        if not span.is_recording():
            return None
        context = span.get_span_context()
        return (context.trace_id, context.span_id)
    except Exception:  # a foreign Span implementation must not break the app
        return None


def record_retrieval(
    span: Span,
    envelope: RetrievalSetEnvelope,
    chunk_texts: Sequence[str | None],
    *,
    embeddings: Any = None,
    query_texts: Iterable[str] = (),
) -> None:
    """Hand the processor one retrieval's chunk texts (rank order, parallel to the envelope)."""
    key = _key(span)
    if key is None:
        return
    try:
        texts = tuple(text if isinstance(text, str) else None for text in chunk_texts)
        queries = tuple(query for query in query_texts if isinstance(query, str))
        chars = sum(len(text) for text in texts if text) + sum(len(query) for query in queries)
        _registry.put(key, RetrievalPayload(envelope, texts, embeddings, queries), chars)
    except Exception:
        _logger.debug("ragprov: could not record retrieval payload", exc_info=True)


def record_deferred_retrieval(
    span: Span,
    resolve: Callable[[], ResolvedRetrieval],
    *,
    retrieval_set_id: str,
    query_texts: Iterable[str] = (),
    chars: int = 0,
) -> bool:
    """Hand the processor a retrieval whose envelope its worker builds by calling ``resolve``.

    ``resolve`` must only read data that the caller can no longer change (copies, immutable
    tables), and build the envelope of ``retrieval_set_id``: the span need not carry any
    ``rag.*`` attribute, as the processor takes the set id from here and the worker exports
    the envelope's attributes. ``chars`` estimates the text it holds, for the pending-text
    bound. Returns whether the payload was kept: when it was not (no processor, a non-recording
    span), the caller must put the envelope on the span itself.
    """
    key = _key(span)
    if key is None:
        return False
    try:
        queries: tuple[str, ...] = ()
        if query_texts:  # usually empty (a dense query): skip building and counting nothing
            queries = tuple(query for query in query_texts if isinstance(query, str))
            chars += sum(len(query) for query in queries)
        payload = RetrievalPayload(
            None, query_texts=queries, resolve=resolve, retrieval_set_id=retrieval_set_id
        )
        return _registry.put(key, payload, chars)
    except Exception:
        _logger.debug("ragprov: could not record a deferred retrieval payload", exc_info=True)
        return False


def record_step_input(span: Span, texts: Iterable[str]) -> None:
    """Add the text a step read (prompt messages, tool arguments) to its payload."""
    key = _key(span)
    if key is None:
        return
    try:
        pieces = [text for text in texts if isinstance(text, str) and text]
        payload = _registry.step_payload(key, sum(len(piece) for piece in pieces))
        if payload is not None:
            payload.input_texts.extend(pieces)
    except Exception:
        _logger.debug("ragprov: could not record step input", exc_info=True)


def record_step_output(span: Span, text: str) -> None:
    """Add text a step produced; streamed pieces are concatenated in call order."""
    key = _key(span)
    if key is None or not isinstance(text, str) or not text:
        return
    try:
        payload = _registry.step_payload(key, len(text))
        if payload is not None:
            payload.output_parts.append(text)
    except Exception:
        _logger.debug("ragprov: could not record step output", exc_info=True)


def record_tool_result(span: Span, output: object, *, error: BaseException | None = None) -> None:
    """Record what a tool returned (``str()`` of it) or the error it raised."""
    key = _key(span)
    if key is None:
        return
    try:
        # Judged now, on the real object: "[]" and [] are both empty, but only the object says so.
        provided = tool_provided_data(output, error=error)
        text = None if output is None else (output if isinstance(output, str) else str(output))
        payload = _registry.step_payload(key, len(text or ""))
        if payload is not None:
            payload.tool_called = True
            payload.tool_output = text
            payload.tool_error = None if error is None else type(error).__qualname__
            payload.tool_provided_data = provided
    except Exception:
        _logger.debug("ragprov: could not record tool result", exc_info=True)


def record_explicit_inputs(span: Span, inputs: Sequence[str]) -> None:
    """Declare the retrieval set ids / step ids a step read (``ragprov.step(inputs=...)``)."""
    key = _key(span)
    if key is None:
        return
    try:
        payload = _registry.step_payload(key, 0)
        if payload is not None:
            payload.explicit_inputs = tuple(str(value) for value in inputs)
    except Exception:
        _logger.debug("ragprov: could not record explicit inputs", exc_info=True)


def attach_consumer() -> None:
    """A processor starts consuming payloads (until :func:`detach_consumer`)."""
    with _registry._lock:
        _registry.consumers += 1


def detach_consumer() -> None:
    """A processor stopped; with no consumer left, pending text is released."""
    with _registry._lock:
        _registry.consumers = max(0, _registry.consumers - 1)
        last = _registry.consumers == 0
    if last:
        _registry.clear()


def configure_bounds(
    *,
    max_spans: int = DEFAULT_MAX_PENDING_SPANS,
    max_chars: int = DEFAULT_MAX_PENDING_CHARS,
    ttl_seconds: float = DEFAULT_PENDING_TTL_SECONDS,
) -> None:
    """Set the bounds of pending payloads (the processor passes its settings here)."""
    _registry.max_spans = max(1, max_spans)
    _registry.max_chars = max(0, max_chars)
    _registry.ttl_seconds = max(0.0, ttl_seconds)


def pending() -> tuple[int, int]:
    """(number of spans, characters of text) currently held, for metrics and tests."""
    return len(_registry), _registry.pending_chars


def sweep() -> None:
    """Evict pending payloads older than the TTL (the processor calls this when idle)."""
    with _registry._lock:
        _registry._evict(time.monotonic())


def take(trace_id: int, span_id: int) -> Payload | None:
    """Remove and return a span's payload (the processor calls this when the span ends)."""
    return _registry.pop((trace_id, span_id))
