"""Lineage on the application side: steps, the retrieval scope, and ancestors in baggage.

A *step* is an LLM call, a tool call, or an explicit ``with ragprov.step(name):`` scope. Three
pieces of per-context state, all in :mod:`contextvars` so that nothing leaks across threads or
asyncio tasks:

* the **current step** — retrievals record the step they ran in (``rag.step_id``);
* the **scope** — retrieval sets and steps that ended earlier in this thread/task. The provenance
  processor appends to it when a retrieval or step span ends (span.end() runs in the caller's
  context) and reads it when a span starts, so a retrieval followed by an LLM call links even in
  a plain script with no parent span. The scope is an immutable tuple replaced on every change: a
  child task sees its parent's entries, never its siblings', and never writes back;
* **baggage** — :func:`inject_ancestors` puts the scope's retrieval set ids into W3C baggage for a
  call to another process; a step started under extracted baggage lists them as ancestors.

Where the scope cannot separate requests — a worker thread serving several requests with no
request span — entries older than ``SCOPE_TTL_SECONDS`` are ignored; :func:`new_scope` starts a
clean one explicitly.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

from ragprov import ids, sidechannel
from ragprov.semconv import attributes as attrs
from ragprov.semconv.attributes import RagLineageMethodValues
from ragprov.signals import TextFingerprint
from ragprov.signals.tokens import TextLines
from ragprov.signals.utilisation import any_overlap_at_least
from ragprov.trace_state import RetrievalRecord, StepRecord

if TYPE_CHECKING:
    from ragprov.instrumentation._base import RetrievalSet

F = TypeVar("F", bound=Callable[..., Any])

#: Scope entries this old are not offered as ancestors (seconds).
SCOPE_TTL_SECONDS = 600.0
#: The scope keeps this many most recent retrievals, and this many most recent steps.
MAX_SCOPE_RETRIEVALS = 64
MAX_SCOPE_STEPS = 16
#: A chunk (or an earlier step's output) is found in a step's input when at least this share of
#: its distinctive tokens occurs there. Higher than the utilisation threshold: a prompt quotes its
#: context nearly verbatim, while a query that merely shares vocabulary must not match.
CONTENT_MATCH_THRESHOLD = 0.6
#: Baggage key carrying ancestor retrieval set ids (comma-separated) across processes.
BAGGAGE_KEY = "rag.ancestor_retrieval_set_ids"
#: At most this many ids travel in baggage (W3C baggage is limited to 8192 bytes in total).
MAX_BAGGAGE_IDS = 32

_TRACER_NAME = "ragprov"


RETRIEVAL = "retrieval"
STEP = "step"


class ScopeEntry(NamedTuple):
    """A retrieval or a step that ended in this context (made at every such span's end on the
    application thread: a named tuple is made in a third of a frozen dataclass's time)."""

    kind: str  # RETRIEVAL or STEP
    record_id: str  # retrieval set id or step id
    trace_id: int
    span_id: int
    ended_at: float  # time.monotonic()


@dataclass(frozen=True, slots=True)
class StepContext:
    """The step currently running in this context."""

    step_id: str
    name: str


_current_step: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "ragprov_current_step", default=None
)


RETRIEVAL_SPAN_KEY = otel_context.create_key("ragprov-retrieval-span")
"""Context key holding the :class:`RetrievalSlot` of an open ragprov framework retrieval span.

A framework retriever instrumented by ragprov (LangChain's, LlamaIndex's) opens its retrieval
span with :func:`ragprov.instrumentation._base.retrieval_span_scope` (or holds a slot in its own
context). Two things then find the span through the slot:

* a vector-store call made inside it *enriches* that span instead of creating a second retrieval
  span: it puts the store attributes on the span at once, leaves its set in ``slot.pending`` and
  sets ``slot.enriched``, so the framework instrumentor does not build a set of its own. When
  the slot closes, :func:`~ragprov.instrumentation._base.settle_slot` puts the set's envelope on
  the span (and hands its texts to the processor) — the framework may first narrow it to what
  the retriever returned (an MMR search asks the store for more candidates than it keeps). Only
  the first single-set store call enriches; a batch call or a second store call inside the same
  scope creates its own spans (children of the framework span);
* a retrieval span of another instrumentation that ends inside it (OpenInference's
  ``RETRIEVER`` spans of the same LangChain or LlamaIndex call) is the same retrieval seen
  twice: the provenance processor gives it the slot's retrieval set id
  (:func:`share_open_retrieval`).
"""


@dataclass(slots=True)
class RetrievalSlot:
    """An open framework retrieval span of ragprov (see :data:`RETRIEVAL_SPAN_KEY`)."""

    span: Span
    enriched: bool = False
    pending: tuple[RetrievalSet, str | None] | None = None
    """The enriching store call's set and data source id, until ``settle_slot``."""
    retrieval_set_id: str | None = None
    """The span's set id, made when first needed (:meth:`set_id`)."""

    def set_id(self) -> str:
        """The retrieval set id of the slot's span (the same on every call)."""
        if self.retrieval_set_id is None:
            self.retrieval_set_id = ids.new_retrieval_set_id()
        return self.retrieval_set_id


def current_retrieval_slot() -> RetrievalSlot | None:
    slot = otel_context.get_value(RETRIEVAL_SPAN_KEY)
    return slot if isinstance(slot, RetrievalSlot) else None


def share_open_retrieval() -> str | None:
    """The retrieval set id of ragprov's framework retrieval span open in this context, for a
    retrieval span of another instrumentation that ends inside it; None when there is none or
    when it is not recording.

    The processor calls this on the application thread when a foreign retrieval span ends
    (span.end() runs in the caller's context). OpenInference traces a LangChain retriever call
    with a ``RETRIEVER`` span, and a LlamaIndex one with two (``retrieve`` around
    ``_retrieve``), which start and end inside the retriever method that ragprov wraps: all of
    them describe ragprov's retrieval event, and share its ``rag.retrieval_set_id``.
    """
    slot = current_retrieval_slot()
    if slot is None or not slot.span.is_recording():
        return None
    return slot.set_id()


class _Scope(NamedTuple):
    """This context's scope. Every span start reads it (:func:`scope_snapshot`), so what it
    returns is kept ready: the entries, and the oldest end time while they are in order."""

    retrievals: tuple[ScopeEntry, ...]
    steps: tuple[ScopeEntry, ...]
    entries: tuple[ScopeEntry, ...]  # retrievals, then steps
    oldest: float  # the earliest ended_at of the entries, or -inf once noted out of order


_EMPTY_SCOPE = _Scope((), (), (), math.inf)
_scope: contextvars.ContextVar[_Scope] = contextvars.ContextVar(
    "ragprov_scope", default=_EMPTY_SCOPE
)


def current_step_id() -> str | None:
    """The id of the innermost explicit step running in this context, if any."""
    step_context = _current_step.get()
    return None if step_context is None else step_context.step_id


def enter_step(step_id: str, name: str) -> contextvars.Token[StepContext | None]:
    """Make ``step_id`` the current step of this context (for instrumentors that open steps).

    Retrievals started until :func:`exit_step` record it as their ``rag.step_id``.
    """
    return _current_step.set(StepContext(step_id, name))


def exit_step(token: contextvars.Token[StepContext | None]) -> None:
    """Restore the step that was current before the matching :func:`enter_step`."""
    _current_step.reset(token)


def note(entry: ScopeEntry) -> None:
    """Append a finished retrieval or step to this context's scope (bounded, oldest dropped).

    Retrievals and steps are bounded separately, so a long chain of steps in one thread never
    pushes the retrievals they read out of the scope.
    """
    scope = _scope.get()
    retrievals, steps = scope.retrievals, scope.steps
    if entry.kind == RETRIEVAL:
        previous = retrievals
        if len(retrievals) >= MAX_SCOPE_RETRIEVALS:
            retrievals = retrievals[len(retrievals) - MAX_SCOPE_RETRIEVALS + 1 :]
        retrievals += (entry,)
    else:
        previous = steps
        if len(steps) >= MAX_SCOPE_STEPS:
            steps = steps[len(steps) - MAX_SCOPE_STEPS + 1 :]
        steps += (entry,)
    # In order (the processor notes entries as they end), each kind's first entry is its oldest.
    oldest = -math.inf
    if scope.oldest != -math.inf and (not previous or previous[-1].ended_at <= entry.ended_at):
        if not steps:
            oldest = retrievals[0].ended_at
        elif not retrievals:
            oldest = steps[0].ended_at
        else:
            oldest = min(retrievals[0].ended_at, steps[0].ended_at)
    _scope.set(_Scope(retrievals, steps, retrievals + steps, oldest))


def scope_snapshot(now: float | None = None) -> tuple[ScopeEntry, ...]:
    """This context's retrievals, then steps, recent enough to be ancestors; oldest first."""
    scope = _scope.get()
    entries = scope.entries
    if not entries:
        return entries
    cutoff = (time.monotonic() if now is None else now) - SCOPE_TTL_SECONDS
    if scope.oldest >= cutoff:
        return entries
    return tuple(entry for entry in entries if entry.ended_at >= cutoff)


@contextmanager
def new_scope() -> Iterator[None]:
    """Run a block with an empty retrieval scope (e.g. one request in a shared worker thread)."""
    token = _scope.set(_EMPTY_SCOPE)
    try:
        yield
    finally:
        _scope.reset(token)


def inject_ancestors(context: Context | None = None) -> Context:
    """A context whose baggage carries this scope's retrieval set ids (most recent last).

    Use it with ``opentelemetry.propagate.inject(carrier, context=...)`` for a call to another
    process; ids already in the baggage are kept and come first.
    """
    existing = ancestors_from_baggage(context)
    ids_in_scope = [entry.record_id for entry in scope_snapshot() if entry.kind == RETRIEVAL]
    merged = list(dict.fromkeys([*existing, *ids_in_scope]))[-MAX_BAGGAGE_IDS:]
    if not merged:
        return context if context is not None else Context()
    return baggage.set_baggage(BAGGAGE_KEY, ",".join(merged), context=context)


def ancestors_from_baggage(context: Context | None = None) -> tuple[str, ...]:
    """Ancestor retrieval set ids carried in baggage (from another process)."""
    value = baggage.get_baggage(BAGGAGE_KEY, context)
    if not isinstance(value, str) or not value:
        return ()
    return tuple(part for part in (piece.strip() for piece in value.split(",")) if part)


class step:  # noqa: N801 - used like a function: `with ragprov.step("rewrite"):`
    """An explicit step: a span named ``step {name}`` with its own ``rag.step_id``.

    As a context manager it yields a :class:`StepHandle`; as a decorator it wraps sync and async
    functions, recording string arguments as the step's input and a string return value as its
    output (through the side channel: nothing is exported unless content capture is on).

    ``inputs`` declares what the step read — retrieval set ids, step ids, or envelopes — and
    makes its lineage ``explicit``.
    """

    def __init__(
        self,
        name: str,
        *,
        inputs: Sequence[Any] = (),
        transformation_type: str = "other",
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.name = name
        self.inputs = tuple(_input_id(value) for value in inputs)
        self.transformation_type = transformation_type
        self._tracer_provider = tracer_provider
        self._active: list[tuple[Any, contextvars.Token[StepContext | None]]] = []

    def __enter__(self) -> StepHandle:
        tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=self._tracer_provider)
        step_id = ids.new_step_id()
        span_manager = tracer.start_as_current_span(
            f"step {self.name}",
            kind=SpanKind.INTERNAL,
            attributes={
                attrs.RAG_STEP_ID: step_id,
                attrs.RAG_TRANSFORMATION_TYPE: self.transformation_type,
            },
        )
        span = span_manager.__enter__()
        token = enter_step(step_id, self.name)
        self._active.append((span_manager, token))
        if self.inputs:
            sidechannel.record_explicit_inputs(span, [value for value in self.inputs if value])
        return StepHandle(step_id, span)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span_manager, token = self._active.pop()
        exit_step(token)
        span_manager.__exit__(exc_type, exc, traceback)

    def __call__(self, function: F) -> F:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._fresh() as handle:
                    handle.record_input(*_string_arguments(args, kwargs))
                    result = await function(*args, **kwargs)
                    if isinstance(result, str):
                        handle.record_output(result)
                    return result

            return cast(F, async_wrapper)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh() as handle:
                handle.record_input(*_string_arguments(args, kwargs))
                result = function(*args, **kwargs)
                if isinstance(result, str):
                    handle.record_output(result)
                return result

        return cast(F, wrapper)

    def _fresh(self) -> step:
        """A new instance per call, so a decorated function can run concurrently."""
        fresh = step(
            self.name,
            transformation_type=self.transformation_type,
            tracer_provider=self._tracer_provider,
        )
        fresh.inputs = self.inputs
        return fresh


@dataclass(frozen=True, slots=True)
class StepHandle:
    """What ``with ragprov.step(...) as handle`` gives: the step id, its span, text recorders."""

    step_id: str
    span: Span

    def record_input(self, *texts: str) -> None:
        """Text this step read (kept in process for lineage and signals; not exported)."""
        sidechannel.record_step_input(self.span, texts)

    def record_output(self, text: str) -> None:
        """Text this step produced."""
        sidechannel.record_step_output(self.span, text)


def _input_id(value: Any) -> str:
    """An explicit input: a retrieval set id / step id string, or an envelope."""
    if isinstance(value, str):
        return value
    retrieval_set_id = getattr(value, "retrieval_set_id", None)
    return retrieval_set_id if isinstance(retrieval_set_id, str) else ""


def _string_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    return [value for value in (*args, *kwargs.values()) if isinstance(value, str)]


@dataclass(frozen=True, slots=True)
class Ancestry:
    """The inferred lineage of one step (or of one retrieval's query)."""

    #: Retrieval sets that fed the step directly (their chunks are what utilisation measures).
    direct_retrieval_set_ids: tuple[str, ...] = ()
    #: All ancestor retrieval sets, transitively, direct ones first (``rag.ancestor_...``).
    retrieval_set_ids: tuple[str, ...] = ()
    #: Tool steps whose output fed the step.
    tool_step_ids: tuple[str, ...] = ()
    method: RagLineageMethodValues | None = None


def infer_ancestors(
    *,
    step_input: TextFingerprint | TextLines | None,
    explicit_inputs: Sequence[str] = (),
    from_baggage: Sequence[str] = (),
    retrievals: Sequence[RetrievalRecord] = (),
    steps: Sequence[StepRecord] = (),
    known_steps: dict[str, StepRecord] | None = None,
    threshold: float = CONTENT_MATCH_THRESHOLD,
) -> Ancestry:
    """Ancestors of a step, by the first rule that finds any: explicit, content match, scope.

    ``retrievals`` and ``steps`` are the candidates (earlier in the same trace or scope), oldest
    first. Explicit inputs name retrieval set ids or step ids (``known_steps`` resolves the
    latter). Content match compares ``step_input`` with each candidate chunk and each earlier
    step output. Scope takes every candidate retrieval. Ids from baggage (another process) are
    always added. Ancestry is transitive through steps' ancestors and retrievals' upstream.
    """
    direct: list[str] = []
    inherited: list[str] = []
    tools: list[str] = []
    method: RagLineageMethodValues | None = None
    by_id = {record.retrieval_set_id: record for record in retrievals}

    if explicit_inputs:
        method = RagLineageMethodValues.EXPLICIT
        for value in explicit_inputs:
            step = (known_steps or {}).get(value)
            if step is None:
                direct.append(value)
            else:
                _take_step(step, inherited, tools)
    else:
        if step_input is not None:
            found = _ContentMatch(step_input, threshold)
            matched = [record for record in retrievals if found.in_input(record.fingerprints)]
            matched_steps = [step for step in steps if found.in_input((step.output,))]
            if (matched or matched_steps) and found.input_has_tokens():
                direct = [record.retrieval_set_id for record in matched]
                for step in matched_steps:
                    _take_step(step, inherited, tools)
                if direct or inherited or tools:
                    method = RagLineageMethodValues.CONTENT_MATCH
        if method is None and retrievals:
            method = RagLineageMethodValues.SCOPE
            direct = [record.retrieval_set_id for record in retrievals]
            tools = [step.step_id for step in steps if step.is_tool]

    upstream = [
        ancestor
        for retrieval_set_id in direct
        if (retrieval := by_id.get(retrieval_set_id)) is not None
        for ancestor in retrieval.upstream_retrieval_set_ids
    ]
    if from_baggage and method is None:
        method = RagLineageMethodValues.SCOPE
    return Ancestry(
        direct_retrieval_set_ids=_unique(direct),
        retrieval_set_ids=_unique([*direct, *inherited, *upstream, *from_baggage]),
        tool_step_ids=_unique(tools),
        method=method,
    )


class _ContentMatch:
    """Is a candidate (chunks of a retrieval, or a step output) found in the step input?

    Found: at least ``threshold`` of the distinctive tokens of one of its fingerprints occur in
    the input. Given :class:`TextLines`, a candidate whose token lines are all lines of the
    input is found at share 1.0 from the line keys alone; the input is fingerprinted only for a
    candidate that this does not settle.
    """

    def __init__(self, step_input: TextFingerprint | TextLines, threshold: float) -> None:
        self.lines = step_input if isinstance(step_input, TextLines) else None
        self.fingerprint = step_input if isinstance(step_input, TextFingerprint) else None
        self.threshold = threshold
        self.tokens_seen = False

    def _input(self) -> TextFingerprint:
        if self.fingerprint is None:
            assert self.lines is not None
            self.fingerprint = self.lines.fingerprint
        return self.fingerprint

    def in_input(self, candidates: Sequence[TextFingerprint | None]) -> bool:
        if self.lines is not None:
            for candidate in candidates:
                if self.lines.contains_all_tokens_of(candidate):
                    self.tokens_seen = True  # the input holds the candidate's tokens
                    return self.threshold <= 1.0  # its share is 1.0, the largest there is
        return any_overlap_at_least(candidates, self._input(), self.threshold)

    def input_has_tokens(self) -> bool:
        return self.tokens_seen or self._input().token_count > 0


def _take_step(step: StepRecord, inherited: list[str], tools: list[str]) -> None:
    inherited.extend(step.ancestor_retrieval_set_ids)
    if step.is_tool:
        tools.append(step.step_id)


def _unique(values: Sequence[str]) -> tuple[str, ...]:
    if len(values) < 2:  # the usual case: one id, or none
        return (values[0],) if values and values[0] else ()
    return tuple(dict.fromkeys(value for value in values if value))
