"""An openai or anthropic app traced by OpenLLMetry or OpenInference, with or without ragprov.

Run by tests/llm/test_llm_coexistence_real.py in the virtual environment that has those
instrumentations (``.venv-coexistence``)::

    python coexistence_app.py {openai|anthropic} {openllmetry|openinference} PLACE URL [provenance]

PLACE is ``none``: only the other instrumentation; ``first`` / ``last``: ragprov's instrumentor
of the client before / after it; ``without_ragprov`` / ``without_other``: both, then ragprov's /
the other one uninstrumented. URL is the local server's base URL. The app makes one call of each
kind (sync and async; JSON, streamed, and through the client's stream helper) and prints, per
call, the answer and every finished span with its step payload (the text the provenance
processor would get from the side channel) as one JSON document.

``provenance``: spans are exported through ragprov's ``ProvenanceSpanProcessor`` (so the step
payload is consumed by it and reported as None), and each call runs in a ``rag`` span after a
retrieval span — the attributes another instrumentation gives a retrieval (``gen_ai.retrieval
.documents``) — whose one document is the passage the answer is built from.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import anthropic
import openai
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ragprov import ProvenanceSpanProcessor, sidechannel

MODEL = "gpt-test"
SYSTEM = "Answer from the context only."
QUESTION = "What was Acme Robotics' revenue in 2024?"
PASSAGE = "Acme Robotics reported revenue of $12.4M in 2024, up 18% on 2023."
MESSAGES: list[Any] = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": QUESTION},
]


def instrumentors(client: str, other: str) -> tuple[BaseInstrumentor, BaseInstrumentor]:
    """(ragprov's, the other one's) instrumentor of ``client``."""
    if client == "anthropic":
        from ragprov.instrumentation.anthropic import AnthropicInstrumentor

        if other == "openllmetry":
            from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor as Other
        else:
            from openinference.instrumentation.anthropic import AnthropicInstrumentor as Other
        return AnthropicInstrumentor(), Other()
    from ragprov.instrumentation.openai import OpenAIInstrumentor

    if other == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry

        return OpenAIInstrumentor(), OpenLLMetry()
    from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInference

    return OpenAIInstrumentor(), OpenInference()


def openai_call(url: str, stream: bool) -> str:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="test", max_retries=0)
    result = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=stream)
    if not stream:
        return str(result.choices[0].message.content)
    return "".join(chunk.choices[0].delta.content or "" for chunk in result if chunk.choices)


async def async_openai_call(url: str, stream: bool) -> str:
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="test", max_retries=0)
    result = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=stream)
    if not stream:
        return str(result.choices[0].message.content)
    pieces = [chunk.choices[0].delta.content or "" async for chunk in result if chunk.choices]
    return "".join(pieces)


ANTHROPIC_ARGUMENTS: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 64,
    "system": SYSTEM,
    "messages": [{"role": "user", "content": QUESTION}],
}


def openai_helper_call(url: str) -> str:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="test", max_retries=0)
    with client.chat.completions.stream(model=MODEL, messages=MESSAGES) as stream:
        return "".join(event.delta for event in stream if event.type == "content.delta")


async def async_openai_helper_call(url: str) -> str:
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="test", max_retries=0)
    async with client.chat.completions.stream(model=MODEL, messages=MESSAGES) as stream:
        return "".join([event.delta async for event in stream if event.type == "content.delta"])


def anthropic_text(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def anthropic_delta(event: Any) -> str:
    if event.type == "content_block_delta" and event.delta.type == "text_delta":
        return str(event.delta.text)
    return ""


def anthropic_call(url: str, stream: bool) -> str:
    client = anthropic.Anthropic(base_url=url, api_key="test", max_retries=0)
    if not stream:
        return anthropic_text(client.messages.create(**ANTHROPIC_ARGUMENTS))
    events = client.messages.create(**ANTHROPIC_ARGUMENTS, stream=True)
    return "".join(anthropic_delta(event) for event in events)


async def async_anthropic_call(url: str, stream: bool) -> str:
    client = anthropic.AsyncAnthropic(base_url=url, api_key="test", max_retries=0)
    if not stream:
        return anthropic_text(await client.messages.create(**ANTHROPIC_ARGUMENTS))
    events = await client.messages.create(**ANTHROPIC_ARGUMENTS, stream=True)
    return "".join([anthropic_delta(event) async for event in events])


def anthropic_helper_call(url: str) -> str:
    client = anthropic.Anthropic(base_url=url, api_key="test", max_retries=0)
    with client.messages.stream(**ANTHROPIC_ARGUMENTS) as stream:
        return "".join(stream.text_stream)


async def async_anthropic_helper_call(url: str) -> str:
    client = anthropic.AsyncAnthropic(base_url=url, api_key="test", max_retries=0)
    async with client.messages.stream(**ANTHROPIC_ARGUMENTS) as stream:
        return "".join([text async for text in stream.text_stream])


def describe(span: ReadableSpan) -> dict[str, Any]:
    assert span.context is not None
    assert span.instrumentation_scope is not None
    payload = sidechannel.take(span.context.trace_id, span.context.span_id)
    step = None
    if isinstance(payload, sidechannel.StepPayload):
        step = {"input_texts": list(payload.input_texts), "output_text": payload.output_text}
    return {
        "name": span.name,
        "kind": span.kind.name,
        "scope": span.instrumentation_scope.name,
        "status": span.status.status_code.name,
        "span_id": span.context.span_id,
        "parent_id": None if span.parent is None else span.parent.span_id,
        "attributes": {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in (span.attributes or {}).items()
        },
        "step": step,
    }


def retrieve(tracer: trace.Tracer) -> None:
    """A retrieval span as another instrumentation of a vector store records it."""
    document = {"id": "doc-1", "score": 0.9, "content": PASSAGE}
    attributes = {
        "gen_ai.operation.name": "retrieval",
        "gen_ai.retrieval.documents": json.dumps([document]),
    }
    with tracer.start_as_current_span("retrieval acme", attributes=attributes):
        pass


def main(client: str, other: str, ragprov: str, url: str, pipeline: str = "raw") -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    if pipeline == "provenance":
        provider.add_span_processor(ProvenanceSpanProcessor(SimpleSpanProcessor(exporter)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        sidechannel.attach_consumer()
    tracer = provider.get_tracer("coexistence_app")
    ours, theirs = instrumentors(client, other)
    if ragprov not in ("none", "last"):
        ours.instrument(tracer_provider=provider)
    theirs.instrument(tracer_provider=provider)
    if ragprov == "last":
        ours.instrument(tracer_provider=provider)
    elif ragprov == "without_ragprov":
        ours.uninstrument()
    elif ragprov == "without_other":
        theirs.uninstrument()

    sync_call, async_call, sync_helper, async_helper = (
        (anthropic_call, async_anthropic_call, anthropic_helper_call, async_anthropic_helper_call)
        if client == "anthropic"
        else (openai_call, async_openai_call, openai_helper_call, async_openai_helper_call)
    )
    calls = {
        "sync_json": lambda: sync_call(url, stream=False),
        "sync_stream": lambda: sync_call(url, stream=True),
        "async_json": lambda: asyncio.run(async_call(url, stream=False)),
        "async_stream": lambda: asyncio.run(async_call(url, stream=True)),
        "sync_helper_stream": lambda: sync_helper(url),
        "async_helper_stream": lambda: asyncio.run(async_helper(url)),
    }
    report: dict[str, Any] = {}
    for name, call in calls.items():
        exporter.clear()
        if pipeline == "provenance":
            with tracer.start_as_current_span("rag"):
                retrieve(tracer)
                answer = call()
            provider.force_flush()
        else:
            answer = call()
        report[name] = {
            "answer": answer,
            "spans": [describe(span) for span in exporter.get_finished_spans()],
        }
    json.dump(report, sys.stdout, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:6])
