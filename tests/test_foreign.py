"""Reading other instrumentations' attributes (ragprov/foreign.py)."""

from __future__ import annotations

import json

from ragprov import foreign


def test_official_messages_text_and_tool_responses_are_read() -> None:
    messages = [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "c1", "response": {"rows": 2}}],
        },
        {"role": "user", "content": "plain string content"},
    ]
    text = foreign.step_text({"gen_ai.input.messages": json.dumps(messages)}, "input")
    assert text == 'Be brief.\n{"rows": 2}\nplain string content'


def test_openinference_indexed_messages_are_read_in_index_order() -> None:
    attributes = {
        "llm.output_messages.1.message.content": "second",
        "llm.output_messages.0.message.content": "first",
    }
    assert foreign.step_text(attributes, "output") == "first\nsecond"


def test_official_system_instructions_come_first_in_the_input() -> None:
    """As OpenLLMetry's anthropic instrumentation writes them (0.62.4)."""
    attributes = {
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "Question?"}]}]
        ),
    }
    assert foreign.step_text(attributes, "input") == "Be brief.\nQuestion?"
    assert foreign.step_text(attributes, "output") is None


def test_openinference_content_parts_are_read_in_index_order() -> None:
    """As OpenInference's anthropic instrumentation writes an answer (3.1.0)."""
    attributes = {
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.contents.1.message_content.type": "text",
        "llm.output_messages.0.message.contents.1.message_content.text": "second",
        "llm.output_messages.0.message.contents.0.message_content.type": "text",
        "llm.output_messages.0.message.contents.0.message_content.text": "first",
        "llm.output_messages.1.message.content": "third",
        "output.value": '{"content": [{"text": "first"}]}',
    }
    assert foreign.step_text(attributes, "output") == "first\nsecond\nthird"


def test_openllmetry_prompts_are_read() -> None:
    assert foreign.step_text({"gen_ai.prompt.0.content": "question"}, "input") == "question"


def test_input_value_is_the_last_resort() -> None:
    assert foreign.step_text({"input.value": "raw"}, "input") == "raw"
    assert foreign.step_text({}, "input") is None


def test_official_retrieval_documents_are_read() -> None:
    documents = json.dumps([{"id": "d1", "score": 0.5, "content": "text", "metadata": {"a": 1}}])
    (document,) = foreign.retrieval_documents({"gen_ai.retrieval.documents": documents})
    assert document == foreign.ForeignDocument("d1", "text", 0.5, {"a": 1})


def test_openinference_hidden_documents_have_no_text() -> None:
    """OPENINFERENCE_HIDE_RETRIEVAL_DOCUMENTS: the content is a mask, not a text to hash."""
    attributes = {
        "openinference.span.kind": "RETRIEVER",
        "retrieval.documents.0.document.content": "__REDACTED__",
        "retrieval.documents.1.document.id": "d2",
        "retrieval.documents.1.document.content": "__REDACTED__",
    }
    assert foreign.retrieval_documents(attributes) == [
        foreign.ForeignDocument(None, None, None, None),
        foreign.ForeignDocument("d2", None, None, None),
    ]


def test_openinference_hidden_messages_are_no_step_text() -> None:
    """OPENINFERENCE_HIDE_INPUT_MESSAGES / _HIDE_INPUTS: masked values are skipped."""
    attributes = {
        "llm.input_messages.0.message.content": "__REDACTED__",
        "llm.input_messages.1.message.content": "visible",
        "input.value": "__REDACTED__",
    }
    assert foreign.step_text(attributes, "input") == "visible"
    assert foreign.step_text({"output.value": "__REDACTED__"}, "output") is None


def test_malformed_json_yields_nothing() -> None:
    assert foreign.retrieval_documents({"gen_ai.retrieval.documents": "{not json"}) == []
    assert foreign.step_text({"gen_ai.output.messages": "[oops"}, "output") is None


def test_span_roles() -> None:
    assert foreign.is_retrieval({"openinference.span.kind": "RETRIEVER"})
    assert foreign.is_step({"llm.request.type": "chat"})
    assert foreign.is_tool({"gen_ai.operation.name": "execute_tool"})
    assert foreign.is_generation({"gen_ai.operation.name": "chat"})
    assert not foreign.is_step({"http.method": "GET"})
