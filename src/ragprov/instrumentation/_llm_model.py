"""What a client module describes: requests, responses, stream accumulators, routes.

A client module (``openai``, ``anthropic``) reads its request bodies into :class:`LLMRequest`,
its responses into :class:`LLMResponse`, its stream events with a :class:`StreamAccumulator`, and
names its LLM endpoints with a :class:`Route` each. The readers use :func:`get` and the ``as_*``
checks, which accept both client models and plain JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ragprov.instrumentation._genai_names import EMBEDDINGS_OPERATION
from ragprov.model import AttributeValue


def get(value: Any, key: str) -> Any:
    """``value[key]`` for a dict, ``value.key`` for an object, ``None`` when absent.

    Responses arrive as client models (parsed) or as plain JSON (a raw response's body); request
    bodies as dicts. Readers use this one accessor for both.
    """
    if isinstance(value, dict):
        return value.get(key)
    return getattr(value, key, None)


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def json_text(value: Any) -> str:
    """Compact JSON for a content attribute (values JSON cannot hold become their ``str()``)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def tool_arguments(value: Any) -> Any:
    """Tool-call arguments for a message part: the JSON object a string holds, else the value."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@dataclass(slots=True)
class LLMRequest:
    """What is known about an LLM call before it runs (read from the request body)."""

    model: str | None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    """Request attributes other than operation, provider, model and server."""
    input_texts: list[str] = field(default_factory=list)
    """Text of every input message, system included, in order (for the side channel)."""
    input_messages: list[dict[str, Any]] | None = None
    """``gen_ai.input.messages`` (only built when content capture is on)."""
    system_instructions: list[dict[str, Any]] | None = None
    """``gen_ai.system_instructions`` (only built when content capture is on)."""


@dataclass(slots=True)
class LLMResponse:
    """What an LLM call returned, read from a response or accumulated from a stream."""

    response_id: str | None = None
    model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    """Further response attributes (cache and reasoning tokens, service tier …)."""
    output_text: str = ""
    """The answer: text of the first choice (for the side channel)."""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    """(call id, tool name) of each tool call the model requested."""
    output_messages: list[dict[str, Any]] | None = None
    """``gen_ai.output.messages`` (only built when content capture is on)."""


class TextBuffer:
    """Streamed text, concatenated as it arrives.

    Appending to a short string and moving it to a list once it passes a few KB keeps copying
    bounded, and lets the pieces be freed at once (keeping every piece alive costs more, per
    event, than the concatenation).
    """

    __slots__ = ("_blocks", "_tail")

    BLOCK_CHARS = 4096

    def __init__(self) -> None:
        self._blocks: list[str] = []
        self._tail = ""

    def add(self, text: str) -> None:
        tail = self._tail + text
        if len(tail) > self.BLOCK_CHARS:
            self._blocks.append(tail)
            tail = ""
        self._tail = tail

    def text(self) -> str:
        if not self._blocks:
            return self._tail
        return "".join(self._blocks) + self._tail


class StreamAccumulator(Protocol):
    """Reads a stream's events one by one (must be cheap: it runs once per event)."""

    def feed(self, event: Any) -> str | None:
        """Take one event; return the answer text it adds (first choice only), if any."""

    def tool_calls(self) -> list[tuple[str, str]]:
        """Tool calls seen so far (id, name)."""

    def result(self) -> LLMResponse:
        """Everything accumulated (``output_text`` included)."""


class NullAccumulator:
    """Reads nothing from a stream (embeddings have none; stands in for an accumulator that
    failed)."""

    def feed(self, event: Any) -> str | None:
        return None

    def tool_calls(self) -> list[tuple[str, str]]:
        return []

    def result(self) -> LLMResponse:
        return LLMResponse()


@dataclass(frozen=True, slots=True)
class Route:
    """An LLM endpoint of a client: how to describe its requests and read its responses."""

    operation: str
    describe: Callable[[Mapping[str, Any], bool], LLMRequest]
    """(request body, capture content) → request."""
    read: Callable[[Any, bool], LLMResponse]
    """(response model or JSON body, capture content) → response."""
    accumulator: Callable[[bool], StreamAccumulator]
    """(capture content) → a fresh accumulator for a streamed response."""

    @property
    def is_step(self) -> bool:
        return self.operation != EMBEDDINGS_OPERATION


@dataclass(frozen=True, slots=True)
class ResultTypes:
    """The client's classes of what its request path returns, besides parsed models."""

    raw: tuple[type, ...] = ()
    """``with_raw_response`` / ``with_streaming_response`` results."""
    streams: tuple[type, ...] = ()
    """Streams of events (iterated with ``__next__``)."""
    async_streams: tuple[type, ...] = ()
    """Async streams of events (``__anext__``)."""


def text_parts(texts: Sequence[str]) -> list[dict[str, Any]]:
    """Message parts of plain texts."""
    return [{"type": "text", "content": text} for text in texts]
