"""``ragprov.tool``: a tool call is an ``execute_tool`` span and a step whose result reaches the
provenance processor through the side channel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from llm_support import is_uuid7, pop_exact
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

from ragprov import lineage, sidechannel
from ragprov.config import CAPTURE_CONTENT_ENV
from ragprov.tools import ToolHandle, tool

Payloads = Callable[[ReadableSpan], sidechannel.StepPayload | None]
REPORT = "Acme Robotics reported revenue of $12.4M for fiscal 2023."


def only_span(spans: Callable[[], list[ReadableSpan]]) -> ReadableSpan:
    finished = spans()
    assert len(finished) == 1, [span.name for span in finished]
    return finished[0]


def tool_attributes(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "rag.step_id": is_uuid7,
        "rag.transformation_type": "tool_call",
        **extra,
    }


def test_a_decorated_tool_records_its_return_value(
    tracer_provider: TracerProvider,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Payloads,
) -> None:
    @tool("search_reports", tracer_provider=tracer_provider)
    def search_reports(query: str, limit: int = 3) -> list[str]:
        return [REPORT]

    assert search_reports("Acme revenue", limit=1) == [REPORT]

    span = only_span(spans)
    assert span.name == "execute_tool search_reports"
    assert span.kind is SpanKind.INTERNAL
    assert span.status.status_code is StatusCode.UNSET
    pop_exact(span.attributes or {}, tool_attributes("search_reports"))
    payload = side_channel(span)
    assert payload is not None
    assert payload.input_texts == ["Acme revenue"]
    assert (payload.tool_called, payload.tool_output, payload.tool_provided_data) == (
        True,
        str([REPORT]),
        True,
    )


def test_the_function_name_is_the_default_tool_name(
    tracer_provider: TracerProvider, spans: Callable[[], list[ReadableSpan]]
) -> None:
    @tool(tracer_provider=tracer_provider)
    def get_weather(city: str) -> str:
        return "rainy"

    get_weather("Berlin")

    assert only_span(spans).name == "execute_tool get_weather"


def test_the_context_manager_records_what_the_handle_is_given(
    tracer_provider: TracerProvider,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Payloads,
) -> None:
    with tool(
        "get_weather",
        call_id="call_1",
        tool_type="function",
        description="Current weather of a city",
        tracer_provider=tracer_provider,
    ) as handle:
        assert isinstance(handle, ToolHandle)
        handle.record_input("Berlin")
        handle.record_result({"city": "Berlin", "weather": "rainy"})

    span = only_span(spans)
    pop_exact(
        span.attributes or {},
        tool_attributes(
            "get_weather",
            **{
                "gen_ai.tool.call.id": "call_1",
                "gen_ai.tool.type": "function",
                "gen_ai.tool.description": "Current weather of a city",
            },
        ),
    )
    assert span.attributes["rag.step_id"] == handle.step_id  # type: ignore[index]
    payload = side_channel(span)
    assert payload is not None
    assert payload.input_texts == ["Berlin"]
    assert payload.tool_provided_data is True


def test_an_empty_result_is_no_data(
    tracer_provider: TracerProvider, spans: Callable[[], list[ReadableSpan]], side_channel: Payloads
) -> None:
    @tool("search_reports", tracer_provider=tracer_provider)
    def search_reports(query: str) -> list[str]:
        return []

    search_reports("nothing")

    payload = side_channel(only_span(spans))
    assert payload is not None
    assert payload.tool_provided_data is False


def test_an_exception_is_recorded_as_the_tools_error_and_reraised_unchanged(
    tracer_provider: TracerProvider,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Payloads,
) -> None:
    failure = TimeoutError("the weather service did not answer")

    @tool("get_weather", tracer_provider=tracer_provider)
    def get_weather(city: str) -> str:
        raise failure

    with pytest.raises(TimeoutError) as raised:
        get_weather("Berlin")

    assert raised.value is failure
    span = only_span(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    pop_exact(
        span.attributes or {}, tool_attributes("get_weather", **{"error.type": "TimeoutError"})
    )
    payload = side_channel(span)
    assert payload is not None
    assert (payload.tool_error, payload.tool_provided_data) == ("TimeoutError", False)


def test_async_tools_work_as_decorator_and_context_manager(
    tracer_provider: TracerProvider,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Payloads,
    run: Callable[[Any], Any],
) -> None:
    @tool("search_reports", tracer_provider=tracer_provider)
    async def search_reports(query: str) -> str:
        return REPORT

    async def scenario() -> None:
        assert await search_reports("Acme") == REPORT
        async with tool("get_weather", tracer_provider=tracer_provider) as handle:
            handle.record_result("rainy")
        with pytest.raises(ValueError, match="bad city"):
            async with tool("get_weather", tracer_provider=tracer_provider):
                raise ValueError("bad city")

    run(scenario())

    decorated, managed, failed = spans()
    assert [side_channel(span).tool_output for span in (decorated, managed)] == [  # type: ignore[union-attr]
        REPORT,
        "rainy",
    ]
    assert failed.status.status_code is StatusCode.ERROR


def test_retrievals_inside_a_tool_belong_to_its_step(tracer_provider: TracerProvider) -> None:
    with tool("search_reports", tracer_provider=tracer_provider) as handle:
        inside = lineage.current_step_id()

    assert inside == handle.step_id
    assert lineage.current_step_id() is None


def test_arguments_and_result_are_attributes_only_with_content_capture(
    tracer_provider: TracerProvider,
    spans: Callable[[], list[ReadableSpan]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @tool("search_reports", tracer_provider=tracer_provider)
    def search_reports(query: str, limit: int = 3) -> list[str]:
        return [REPORT]

    search_reports("Acme revenue", limit=1)
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    search_reports("Acme revenue", limit=1)

    without, with_content = spans()
    assert "gen_ai.tool.call.result" not in (without.attributes or {})
    attributes = dict(with_content.attributes or {})
    assert json.loads(str(attributes["gen_ai.tool.call.arguments"])) == {
        "query": "Acme revenue",
        "limit": 1,
    }
    assert json.loads(str(attributes["gen_ai.tool.call.result"])) == [REPORT]


def test_a_decorated_tool_can_run_concurrently(
    tracer_provider: TracerProvider, spans: Callable[[], list[ReadableSpan]], run: Any
) -> None:
    @tool("lookup", tracer_provider=tracer_provider)
    async def lookup(key: str) -> str:
        await asyncio.sleep(0)
        return key.upper()

    async def scenario() -> list[str]:
        return list(await asyncio.gather(*(lookup(key) for key in "abc")))

    assert run(scenario()) == ["A", "B", "C"]
    step_ids = {span.attributes["rag.step_id"] for span in spans()}  # type: ignore[index]
    assert len(step_ids) == 3
