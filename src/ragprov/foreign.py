"""Reading spans made by other GenAI instrumentations.

The provenance processor understands retrieval and LLM spans that ragprov did not create, as long
as they carry what it needs in attributes. This module is the list of what is read, and from
where (docs/processor.md repeats it for users):

Retrieval spans — recognised by ``gen_ai.operation.name = "retrieval"`` (official GenAI) or
``openinference.span.kind = "RETRIEVER"`` (OpenInference); documents are read from

* ``gen_ai.retrieval.documents``: a JSON array of objects with ``id``, ``score`` and, when
  content capture is on, ``content`` (or ``text``) and ``metadata``;
* ``retrieval.documents.{i}.document.id / .content / .score / .metadata`` (OpenInference; the
  metadata is a JSON object string, and may hold a stamped ``chunk_id`` and quality keys).

Step spans — recognised by ``gen_ai.operation.name`` in :data:`STEP_OPERATIONS`,
``openinference.span.kind`` in LLM/TOOL/AGENT, or OpenLLMetry's ``llm.request.type``; text is read
from (first found wins)

* input: ``gen_ai.system_instructions`` then ``gen_ai.input.messages`` (official JSON:
  ``[{"role", "parts": [{"type": "text", "content"}]}]``; OpenLLMetry writes these too),
  OpenInference ``llm.input_messages.{i}.message.content`` or
  ``llm.input_messages.{i}.message.contents.{j}.message_content.text``, older OpenLLMetry
  ``gen_ai.prompt.{i}.content``, then OpenInference ``input.value``;
* output: ``gen_ai.output.messages``, ``llm.output_messages.{i}.message.content`` or
  ``.contents.{j}.message_content.text``, ``gen_ai.completion.{i}.content``, then
  ``output.value``.

Text is only present when the other instrumentation captures content; without it the processor
still links steps by scope but cannot measure utilisation — unless ragprov's client instrumentor
ran inside that span's call: it then hands the prompt and answer over the side channel keyed on
that span (docs/llm-clients.md, *Coexistence*), and the side channel comes first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
OPENLLMETRY_REQUEST_TYPE = "llm.request.type"

RETRIEVAL_OPERATION = "retrieval"
TOOL_OPERATION = "execute_tool"
#: gen_ai.operation.name values that make a span a step.
STEP_OPERATIONS = frozenset(
    {
        "chat",
        "text_completion",
        "generate_content",
        "execute_tool",
        "invoke_agent",
        "invoke_workflow",
    }
)
GENERATION_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
_OPENINFERENCE_STEP_KINDS = frozenset({"LLM", "TOOL", "AGENT"})

#: What OpenInference writes in place of a value its settings hide (``OPENINFERENCE_HIDE_*``):
#: no text, not a text to hash or to match.
OPENINFERENCE_REDACTED = "__REDACTED__"

_OPENINFERENCE_DOCUMENT = re.compile(r"^retrieval\.documents\.(\d+)\.document\.(\w+)$")
# OpenInference: a message's text is its ``content``, or the text parts of its ``contents``.
_INDEXED_CONTENT = {
    "input": (
        re.compile(
            r"^llm\.input_messages\.(\d+)\.message\."
            r"(?:content|contents\.(\d+)\.message_content\.text)$"
        ),
        re.compile(r"^gen_ai\.prompt\.(\d+)\.content$"),
    ),
    "output": (
        re.compile(
            r"^llm\.output_messages\.(\d+)\.message\."
            r"(?:content|contents\.(\d+)\.message_content\.text)$"
        ),
        re.compile(r"^gen_ai\.completion\.(\d+)\.content$"),
    ),
}


@dataclass(frozen=True, slots=True)
class ForeignDocument:
    """One document of a retrieval span made by another instrumentation."""

    store_id: str | None
    text: str | None
    score: float | None
    metadata: Mapping[str, Any] | None


def is_retrieval(attributes: Mapping[str, Any]) -> bool:
    return (
        attributes.get(GEN_AI_OPERATION_NAME) == RETRIEVAL_OPERATION
        or attributes.get(OPENINFERENCE_SPAN_KIND) == "RETRIEVER"
    )


def is_step(attributes: Mapping[str, Any]) -> bool:
    return (
        attributes.get(GEN_AI_OPERATION_NAME) in STEP_OPERATIONS
        or attributes.get(OPENINFERENCE_SPAN_KIND) in _OPENINFERENCE_STEP_KINDS
        or OPENLLMETRY_REQUEST_TYPE in attributes
    )


def is_tool(attributes: Mapping[str, Any]) -> bool:
    return (
        attributes.get(GEN_AI_OPERATION_NAME) == TOOL_OPERATION
        or attributes.get(OPENINFERENCE_SPAN_KIND) == "TOOL"
    )


def is_generation(attributes: Mapping[str, Any]) -> bool:
    return (
        attributes.get(GEN_AI_OPERATION_NAME) in GENERATION_OPERATIONS
        or attributes.get(OPENINFERENCE_SPAN_KIND) == "LLM"
        or attributes.get(OPENLLMETRY_REQUEST_TYPE) in ("chat", "completion")
    )


def is_embeddings(attributes: Mapping[str, Any]) -> bool:
    """An embeddings span: an LLM instrumentor adds no span of its own beside it."""
    return (
        attributes.get(GEN_AI_OPERATION_NAME) == "embeddings"
        or attributes.get(OPENINFERENCE_SPAN_KIND) == "EMBEDDING"
        or attributes.get(OPENLLMETRY_REQUEST_TYPE) == "embedding"
    )


def retrieval_documents(attributes: Mapping[str, Any]) -> list[ForeignDocument]:
    """Documents of a foreign retrieval span, in rank order; empty when none are recorded."""
    official = attributes.get("gen_ai.retrieval.documents")
    if isinstance(official, str):
        parsed = _json(official)
        if isinstance(parsed, list):
            return [_document(item) for item in parsed if isinstance(item, Mapping)]
    fields: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        match = _OPENINFERENCE_DOCUMENT.match(key)
        if match:
            fields.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [_document(fields[index]) for index in sorted(fields)]


def step_text(attributes: Mapping[str, Any], direction: str) -> str | None:
    """The input or output text of a foreign step span (``direction`` is "input"/"output")."""
    official = attributes.get(f"gen_ai.{direction}.messages")
    if isinstance(official, str):
        texts = list(_message_texts(_json(official)))
        instructions = attributes.get("gen_ai.system_instructions")
        if direction == "input" and isinstance(instructions, str):
            # The system prompt is input too (ragprov's own steps count it the same way).
            texts[:0] = _message_texts([{"parts": _json(instructions)}])
        if texts:
            return "\n".join(texts)
    for pattern in _INDEXED_CONTENT[direction]:
        pieces = sorted(
            (tuple(int(index) for index in match.groups() if index is not None), value)
            for key, value in attributes.items()
            if _is_text(value) and (match := pattern.match(key))
        )
        if pieces:
            return "\n".join(value for _, value in pieces)
    value = attributes.get(f"{direction}.value")
    return value if _is_text(value) and value else None


def _is_text(value: object) -> bool:
    return isinstance(value, str) and value != OPENINFERENCE_REDACTED


def _document(item: Mapping[str, Any]) -> ForeignDocument:
    text = item.get("content", item.get("text"))
    metadata = item.get("metadata")
    if isinstance(metadata, str):
        metadata = _json(metadata)
    store_id = item.get("id")
    return ForeignDocument(
        store_id=None if store_id is None else str(store_id),
        text=text if _is_text(text) else None,
        score=_number(item.get("score")),
        metadata=metadata if isinstance(metadata, Mapping) else None,
    )


def _message_texts(messages: Any) -> Iterator[str]:
    """Text parts of official GenAI messages (also accepts plain ``content`` strings)."""
    if not isinstance(messages, list):
        return
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield content
        parts = message.get("parts")
        if isinstance(parts, list):
            for part in parts:
                if not isinstance(part, Mapping):
                    continue
                kind = part.get("type", "text")
                if kind == "text" and isinstance(part.get("content"), str):
                    yield part["content"]
                elif kind == "tool_call_response" and part.get("response") is not None:
                    # The convention's tool result field; any JSON value.
                    response = part["response"]
                    yield response if isinstance(response, str) else json.dumps(response)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None
