"""``ragprov.tool``: a tool call as a provenance step.

A tool call is a step (see :mod:`ragprov.lineage`): its span is a GenAI ``execute_tool`` span —
``execute_tool {name}``, kind INTERNAL, ``gen_ai.operation.name = execute_tool``,
``gen_ai.tool.name``, ``gen_ai.tool.call.id`` when known (the id the model gave the call, which
the LLM span listed in ``rag.requested_tool_call_ids``), ``rag.step_id`` and
``rag.transformation_type = tool_call``. What the tool returned goes to the provenance processor
through :func:`ragprov.sidechannel.record_tool_result` (it decides ``rag.tool_provided_data``, and
an answer that reads the tool's output links to this step); an exception is recorded as the
tool's error and re-raised unchanged. Retrievals made inside the tool carry its ``rag.step_id``.

As a decorator (sync or async functions) the return value is recorded::

    @ragprov.tool("search_reports")
    def search_reports(query: str) -> list[str]: ...

As a context manager (``with`` or ``async with``) the handle records it::

    with ragprov.tool("get_weather", call_id=call.id) as handle:
        handle.record_result(weather_api(city))

String arguments of a decorated function (and ``handle.record_input``) are the step's input text,
used for lineage. Arguments and result become the attributes ``gen_ai.tool.call.arguments`` /
``gen_ai.tool.call.result`` only when content capture is on.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar, cast

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ragprov import ids, lineage, sidechannel
from ragprov.config import load_settings
from ragprov.semconv import attributes as attrs
from ragprov.semconv.attributes import RagTransformationTypeValues

F = TypeVar("F", bound=Callable[..., Any])

_TRACER_NAME = "ragprov"

GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_TOOL_DESCRIPTION = "gen_ai.tool.description"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
ERROR_TYPE = "error.type"
EXECUTE_TOOL = "execute_tool"


_logger = logging.getLogger(__name__)
_logged: set[str] = set()


def log_once(what: str) -> None:
    """Log a failure of ragprov itself with its traceback once, then at debug level."""
    level = logging.DEBUG if what in _logged else logging.WARNING
    _logged.add(what)
    _logger.log(level, "ragprov.tool: %s", what, exc_info=True)


_Active = tuple[Any, "contextvars.Token[lineage.StepContext | None]", Span]


def _content(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


@dataclass(slots=True)
class ToolHandle:
    """What ``with ragprov.tool(...) as handle`` gives: the step id, the span, recorders."""

    step_id: str
    span: Span
    capture: bool = False
    result_recorded: bool = field(default=False, repr=False)

    def record_input(self, *texts: str) -> None:
        """Text the tool read (its query, say): kept in process for lineage, not exported."""
        sidechannel.record_step_input(self.span, texts)

    def record_arguments(self, arguments: Any) -> None:
        """The tool's arguments: an attribute only when content capture is on."""
        if self.capture:
            self.span.set_attribute(GEN_AI_TOOL_CALL_ARGUMENTS, _content(arguments))

    def record_result(self, value: Any) -> None:
        """What the tool returned (judged for ``rag.tool_provided_data``; its text is kept in
        process for lineage and exported only when content capture is on)."""
        self.result_recorded = True
        sidechannel.record_tool_result(self.span, value)
        if self.capture and value is not None:
            self.span.set_attribute(GEN_AI_TOOL_CALL_RESULT, _content(value))


class tool:  # noqa: N801 - used like a function: `with ragprov.tool("search"):`
    """A tool call step: context manager (sync and async) and decorator (sync and async).

    ``name`` is the tool's name (a decorated function's ``__name__`` when omitted);
    ``call_id`` the id the model gave this call; ``tool_type`` (``function``, ``extension``,
    ``datastore``) and ``description`` are recorded when given.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        call_id: str | None = None,
        tool_type: str | None = None,
        description: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.name = name
        self.call_id = call_id
        self.tool_type = tool_type
        self.description = description
        self._tracer_provider = tracer_provider
        self._active: list[_Active | None] = []

    # ---- context manager

    def __enter__(self) -> ToolHandle:
        try:
            return self._start()
        except Exception:
            log_once("could not start a tool span")
            self._active.append(None)
            return ToolHandle("", trace.INVALID_SPAN)

    def _start(self) -> ToolHandle:
        name = self.name or "tool"
        step_id = ids.new_step_id()
        attributes: dict[str, Any] = {
            GEN_AI_OPERATION_NAME: EXECUTE_TOOL,
            GEN_AI_TOOL_NAME: name,
            attrs.RAG_STEP_ID: step_id,
            attrs.RAG_TRANSFORMATION_TYPE: RagTransformationTypeValues.TOOL_CALL.value,
        }
        for key, value in (
            (GEN_AI_TOOL_CALL_ID, self.call_id),
            (GEN_AI_TOOL_TYPE, self.tool_type),
            (GEN_AI_TOOL_DESCRIPTION, self.description),
        ):
            if value:
                attributes[key] = value
        tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=self._tracer_provider)
        span_manager = tracer.start_as_current_span(
            f"{EXECUTE_TOOL} {name}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        span = span_manager.__enter__()
        # The tool is the current step: retrievals made inside it record its step id.
        token = lineage.enter_step(step_id, name)
        self._active.append((span_manager, token, span))
        return ToolHandle(step_id, span, capture=load_settings().capture_content)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        active = self._active.pop()
        if active is None:
            return
        span_manager, token, span = active
        try:
            lineage.exit_step(token)
            if isinstance(exc, Exception):
                sidechannel.record_tool_result(span, None, error=exc)
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__qualname__}: {exc}"))
                span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
        except Exception:
            log_once("could not record a tool's error")
        span_manager.__exit__(exc_type, exc, traceback)

    async def __aenter__(self) -> ToolHandle:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    # ---- decorator

    def __call__(self, function: F) -> F:
        name = self.name or getattr(function, "__name__", "tool")
        signature = _signature(function)

        def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tool, ToolHandle]:
            fresh = tool(
                name,
                call_id=self.call_id,
                tool_type=self.tool_type,
                description=self.description,
                tracer_provider=self._tracer_provider,
            )
            handle = fresh.__enter__()
            try:
                handle.record_input(*(v for v in (*args, *kwargs.values()) if isinstance(v, str)))
                if handle.capture:
                    handle.record_arguments(_arguments(signature, args, kwargs))
            except Exception:
                log_once("could not record a tool's arguments")
            return fresh, handle

        def finish(fresh: tool, handle: ToolHandle, result: Any) -> None:
            try:
                handle.record_result(result)
            except Exception:
                log_once("could not record a tool's result")
            fresh.__exit__(None, None, None)

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                fresh, handle = start(args, kwargs)
                try:
                    result = await function(*args, **kwargs)
                except BaseException as error:
                    fresh.__exit__(type(error), error, error.__traceback__)
                    raise
                finish(fresh, handle, result)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            fresh, handle = start(args, kwargs)
            try:
                result = function(*args, **kwargs)
            except BaseException as error:
                fresh.__exit__(type(error), error, error.__traceback__)
                raise
            finish(fresh, handle, result)
            return result

        return cast(F, wrapper)


def _signature(function: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


def _arguments(
    signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The call's arguments by parameter name (positional ones as ``args`` when unbindable)."""
    if signature is not None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            pass
        else:
            return dict(bound.arguments)
    return {"args": list(args), **kwargs} if args else dict(kwargs)
