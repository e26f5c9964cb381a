"""Instrumentation of LangChain (``langchain-core``): one workflow span around a chain's run,
and one retrieval span per retriever call (:mod:`ragprov.instrumentation._langchain_retriever`).

LangChain runs every step of a chain in a *copy* of the caller's context, and the branches of a
``RunnableParallel`` in worker threads, so what one step leaves in its context (the retrieval
scope of :mod:`ragprov.lineage`) never reaches the next. Without a span that is current for the
whole run, the retrieval and the LLM call behind a chain are two separate traces and are not
linked. This instrumentor opens that span; the vector-store and LLM spans become its children,
the provenance processor links them by content within the trace and mirrors the diagnosis onto
it when it is the trace's local root.

Patched methods — the entry points of the runnables that compose others, through which an LCEL
chain (``retriever | prompt | llm``, ``{"context": ..., "question": ...}``) is run: ``invoke``,
``ainvoke``, ``batch``, ``abatch``, ``stream`` and ``astream`` where each of ``RunnableSequence``,
``RunnableParallel``, ``RunnableWithFallbacks`` (``with_fallbacks``) and ``RunnableRetry``
(``with_retry``) defines them. ``astream_events`` and ``astream_log`` run through ``astream``;
an inherited method is not patched (that would patch every runnable): ``RunnableParallel.batch``
is the base class's, which invokes the parallel once per input, one span per input.

The span (``INTERNAL``) follows the GenAI conventions' workflow span: named
``invoke_workflow {gen_ai.workflow.name}``, with ``gen_ai.operation.name = invoke_workflow`` and
``gen_ai.workflow.name`` = the run name (``config["run_name"]``, else the runnable's name).
A run failing with an ``Exception`` sets status ERROR, ``error.type`` and the exception event (a
cancellation just ends the span); no input or output is recorded.

Only the outermost run opens a span: a chain run inside another one (a step, a function of a
``RunnableLambda``) finds the context key this span sets and runs untraced. A run started under
an application span (a web request) opens its span as that span's child: the boundary of the
chain within the request. A stream's span ends when the stream is exhausted, fails, is closed or
garbage-collected. A bare model or retriever call (``llm.invoke``) opens no workflow span: it
runs in the caller's context and links like any direct client call (a retriever call still gets
its retrieval span).

Usage: ``LangChainInstrumentor().instrument(tracer_provider=...)`` or ``opentelemetry-instrument``
(entry point ``ragprov_langchain``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass, field
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind

from ragprov import __version__
from ragprov.instrumentation._genai_names import GEN_AI_OPERATION_NAME
from ragprov.instrumentation._patching import (
    PatchingInstrumentor,
    Wrapper,
    call_argument,
    log_once,
    record_error,
)

SUPPORTED_VERSIONS = ("langchain-core >= 0.3",)

GEN_AI_WORKFLOW_NAME = "gen_ai.workflow.name"
INVOKE_WORKFLOW_OPERATION = "invoke_workflow"

#: Set in the context of a traced run: runs started inside it are nested and open no span.
_RUN_KEY = otel_context.create_key("ragprov-langchain-run")

_ENTRY_POINTS = ("invoke", "ainvoke", "batch", "abatch", "stream", "astream")


class LangChainInstrumentor(PatchingInstrumentor[trace.Tracer]):
    """A workflow span around the outermost run of a LangChain chain; a retrieval span around
    each retriever call."""

    library = "langchain"

    def instrumentation_dependencies(self) -> Collection[str]:
        return SUPPORTED_VERSIONS

    def _context(self, tracer_provider: trace.TracerProvider | None) -> trace.Tracer:
        return trace.get_tracer("ragprov.instrumentation.langchain", __version__, tracer_provider)

    def _patch(self, tracer: trace.Tracer) -> None:
        from langchain_core.runnables import (
            RunnableParallel,
            RunnableSequence,
            RunnableWithFallbacks,
        )
        from langchain_core.runnables.retry import RunnableRetry

        wrappers: dict[str, Wrapper] = {
            "invoke": _call_wrapper(tracer),
            "batch": _call_wrapper(tracer),
            "ainvoke": _async_call_wrapper(tracer),
            "abatch": _async_call_wrapper(tracer),
            "stream": _stream_wrapper(tracer, SyncRunStream),
            "astream": _stream_wrapper(tracer, AsyncRunStream),
        }
        for owner in (RunnableSequence, RunnableParallel, RunnableWithFallbacks, RunnableRetry):
            for method in _ENTRY_POINTS:
                # Only where the class itself defines the method: patching an inherited one
                # would patch the base class, i.e. every runnable.
                if method in vars(owner):
                    self._wrap(owner, method, wrappers[method])
        self._patch_retrievers(tracer)

    def _patch_retrievers(self, tracer: trace.Tracer) -> None:
        from langchain_core.retrievers import BaseRetriever

        from ragprov.instrumentation._framework_retrieval import (
            async_retriever_wrapper,
            retriever_wrapper,
        )
        from ragprov.instrumentation._langchain_retriever import LANGCHAIN_RETRIEVERS

        kind = LANGCHAIN_RETRIEVERS
        self._wrap(BaseRetriever, "invoke", retriever_wrapper(tracer, kind))
        self._wrap(BaseRetriever, "ainvoke", async_retriever_wrapper(tracer, kind))


@dataclass(slots=True)
class WorkflowRun:
    """The span of one outermost run and the context that makes it current."""

    span: trace.Span
    context: otel_context.Context
    ended: bool = field(default=False)

    def current(self, ends_with: type[BaseException] | tuple[()] = ()) -> CurrentRun:
        """``with run.current():`` — the span is current for the block; an exception raised
        there ends the run, as an error unless it is ``ends_with`` (the end of a stream)."""
        return CurrentRun(self, ends_with)

    def end(self, error: BaseException | None) -> None:
        if self.ended:
            return
        self.ended = True
        if error is not None:
            record_error(self.span, error)
        try:
            self.span.end()
        except Exception:
            log_once("could not end a LangChain workflow span")


class CurrentRun:
    """What :meth:`WorkflowRun.current` returns: attaches the run's context on entry."""

    __slots__ = ("_ends_with", "_run", "_token")

    def __init__(self, run: WorkflowRun, ends_with: type[BaseException] | tuple[()]) -> None:
        self._run = run
        self._ends_with = ends_with

    def __enter__(self) -> None:
        self._token = otel_context.attach(self._run.context)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any
    ) -> None:
        otel_context.detach(self._token)
        if kind is not None:
            self._run.end(None if issubclass(kind, self._ends_with) else error)


def _begin(
    tracer: trace.Tracer, runnable: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> WorkflowRun | None:
    """The span of this run, or None: nested in a traced run, suppressed, or a failure."""
    if otel_context.get_value(_RUN_KEY) or not is_instrumentation_enabled():
        return None
    try:
        name = _workflow_name(runnable, call_argument(args, kwargs, "config", 1))
        span = tracer.start_span(
            f"{INVOKE_WORKFLOW_OPERATION} {name}",
            kind=SpanKind.INTERNAL,
            attributes={
                GEN_AI_OPERATION_NAME: INVOKE_WORKFLOW_OPERATION,
                GEN_AI_WORKFLOW_NAME: name,
            },
        )
        context = otel_context.set_value(_RUN_KEY, True, trace.set_span_in_context(span))
        return WorkflowRun(span, context)
    except Exception:
        log_once("could not start a LangChain workflow span")
        return None


def _workflow_name(runnable: Any, config: Any) -> str:
    """``run_name`` of the run's config (a batch's list of configs has none), else the
    runnable's own name (``RunnableSequence``, or what ``with_config``/``name=`` set)."""
    if isinstance(config, dict):
        run_name = config.get("run_name")
        if isinstance(run_name, str) and run_name:
            return run_name
    name = runnable.get_name()
    return name if isinstance(name, str) and name else type(runnable).__name__


def _call_wrapper(tracer: trace.Tracer) -> Wrapper:
    """``invoke`` / ``batch``: the span is current for the call."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        run = _begin(tracer, instance, args, kwargs)
        if run is None:
            return wrapped(*args, **kwargs)
        with run.current():
            result = wrapped(*args, **kwargs)
        run.end(None)
        return result

    return wrapper


def _async_call_wrapper(tracer: trace.Tracer) -> Wrapper:
    """``ainvoke`` / ``abatch``: the span starts when the coroutine is awaited, in its task."""

    async def traced(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        run = _begin(tracer, instance, args, kwargs)
        if run is None:
            return await wrapped(*args, **kwargs)
        with run.current():
            result = await wrapped(*args, **kwargs)
        run.end(None)
        return result

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        return traced(wrapped, instance, args, kwargs)

    return wrapper


def _stream_wrapper(tracer: trace.Tracer, proxy: Callable[[Any, WorkflowRun], Any]) -> Wrapper:
    """``stream`` / ``astream``: the span starts with the call and is current while the stream
    produces each chunk (the generator body runs then, in the consumer's context)."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        run = _begin(tracer, instance, args, kwargs)
        if run is None:
            return wrapped(*args, **kwargs)
        try:
            stream = wrapped(*args, **kwargs)
        except BaseException as error:
            run.end(error)
            raise
        return proxy(stream, run)

    return wrapper


class SyncRunStream(wrapt.ObjectProxy[Any]):
    """A chain's stream (a generator) run with its workflow span current; the span ends when
    the stream is exhausted, fails, is closed or garbage-collected."""

    def __init__(self, stream: Any, run: WorkflowRun) -> None:
        super().__init__(stream)
        self._self_run = run

    def __iter__(self) -> SyncRunStream:
        return self

    def __next__(self) -> Any:
        return self._self_resume(self.__wrapped__.__next__)

    def send(self, value: Any) -> Any:
        return self._self_resume(self.__wrapped__.send, value)

    def throw(self, *exc_info: Any) -> Any:
        return self._self_resume(self.__wrapped__.throw, *exc_info)

    def close(self) -> None:
        with self._self_run.current():
            self.__wrapped__.close()
        self._self_run.end(None)

    def _self_resume(self, step: Callable[..., Any], *args: Any) -> Any:
        with self._self_run.current(ends_with=StopIteration):
            return step(*args)

    def __del__(self) -> None:
        run = getattr(self, "_self_run", None)
        if run is not None:
            run.end(None)


class AsyncRunStream(wrapt.ObjectProxy[Any]):
    """The async twin of :class:`SyncRunStream` (an async generator)."""

    def __init__(self, stream: Any, run: WorkflowRun) -> None:
        super().__init__(stream)
        self._self_run = run

    def __aiter__(self) -> AsyncRunStream:
        return self

    async def __anext__(self) -> Any:
        return await self._self_resume(self.__wrapped__.__anext__)

    async def asend(self, value: Any) -> Any:
        return await self._self_resume(self.__wrapped__.asend, value)

    async def athrow(self, *exc_info: Any) -> Any:
        return await self._self_resume(self.__wrapped__.athrow, *exc_info)

    async def aclose(self) -> None:
        with self._self_run.current():
            await self.__wrapped__.aclose()
        self._self_run.end(None)

    async def _self_resume(self, step: Callable[..., Any], *args: Any) -> Any:
        with self._self_run.current(ends_with=StopAsyncIteration):
            return await step(*args)

    def __del__(self) -> None:
        run = getattr(self, "_self_run", None)
        if run is not None:
            run.end(None)
