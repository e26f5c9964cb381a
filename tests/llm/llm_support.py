"""A local OpenAI- and Anthropic-compatible server, and helpers of the LLM-client tests.

The real ``openai`` and ``anthropic`` clients talk to :class:`LLMServer` over HTTP (they use
``httpx2``, which respx does not intercept). What the server answers is set per test with a
:class:`Script`: the answer text (split into streamed pieces), tool calls, an HTTP error status,
or a delay longer than the client's timeout.

Endpoints: ``POST /v1/chat/completions`` (JSON, or SSE ending with ``data: [DONE]`` when
``"stream": true``; a usage chunk when ``stream_options.include_usage``), ``POST /v1/responses``
(JSON or SSE events), ``POST /v1/embeddings`` (floats or base64) and ``POST /v1/messages``
(Anthropic JSON or SSE events).
"""

from __future__ import annotations

import base64
import json
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry import context as otel_context

ANSWER = "Acme Robotics reported revenue of $12.4M in 2024, up 18% year on year."
RESPONSE_MODEL_SUFFIX = "-2026-01-01"
INPUT_TOKENS = 21
OUTPUT_TOKENS = 7
TIMEOUT_SECONDS = 0.2


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Script:
    """What the server answers next."""

    answer: str = ANSWER
    pieces: int = 4
    """Number of text deltas of a streamed answer."""
    tool_calls: tuple[ToolCall, ...] = ()
    status: int = 200
    delay: float = 0.0
    """Seconds to wait before answering (longer than the client timeout: a timeout)."""

    def deltas(self) -> list[str]:
        if not self.answer:
            return []
        size = max(1, -(-len(self.answer) // self.pieces))
        return [self.answer[i : i + size] for i in range(0, len(self.answer), size)]


@dataclass
class LLMServer:
    url: str
    host: str
    port: int
    script: Script = field(default_factory=Script)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"


# --------------------------------------------------------------------------- payloads


def _chat_completion(body: dict[str, Any], script: Script) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": script.answer or None}
    if script.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in script.tool_calls
        ]
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body["model"] + RESPONSE_MODEL_SUFFIX,
        "system_fingerprint": "fp_test",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if script.tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": _openai_usage(),
    }


def _openai_usage() -> dict[str, int]:
    return {
        "prompt_tokens": INPUT_TOKENS,
        "completion_tokens": OUTPUT_TOKENS,
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
    }


def _chat_chunks(body: dict[str, Any], script: Script) -> list[str]:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        payload = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": body["model"] + RESPONSE_MODEL_SUFFIX,
            "system_fingerprint": "fp_test",
            "choices": choices,
            **extra,
        }
        if include_usage and "usage" not in extra:
            payload["usage"] = None
        return f"data: {json.dumps(payload)}\n\n"

    def delta(content: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": content, "finish_reason": finish, "logprobs": None}]

    events = [chunk(delta({"role": "assistant", "content": ""}))]
    events += [chunk(delta({"content": piece})) for piece in script.deltas()]
    for index, call in enumerate(script.tool_calls):
        arguments = json.dumps(call.arguments)
        half = len(arguments) // 2
        start = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": arguments[:half]},
        }
        events.append(chunk(delta({"tool_calls": [start]})))
        rest = {"index": index, "function": {"arguments": arguments[half:]}}
        events.append(chunk(delta({"tool_calls": [rest]})))
    events.append(chunk(delta({}, "tool_calls" if script.tool_calls else "stop")))
    if include_usage:
        events.append(chunk([], usage=_openai_usage()))
    events.append("data: [DONE]\n\n")
    return events


def _response(body: dict[str, Any], script: Script, status: str = "completed") -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if script.answer and status == "completed":
        output.append(
            {
                "type": "message",
                "id": "msg_test",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": script.answer, "annotations": []}],
            }
        )
    if status == "completed":
        output += [
            {
                "type": "function_call",
                "id": f"fc_{call.id}",
                "call_id": call.id,
                "name": call.name,
                "arguments": json.dumps(call.arguments),
                "status": "completed",
            }
            for call in script.tool_calls
        ]
    return {
        "id": "resp_test",
        "object": "response",
        "created_at": 1_700_000_000,
        "status": status,
        "model": body["model"] + RESPONSE_MODEL_SUFFIX,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": INPUT_TOKENS,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": OUTPUT_TOKENS,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
        }
        if status == "completed"
        else None,
    }


def _response_events(body: dict[str, Any], script: Script) -> list[str]:
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": _response(body, script, "in_progress")}),
    ]
    index = 0
    if script.answer:
        item = {
            "type": "message",
            "id": "msg_test",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": "msg_test", "output_index": 0, "content_index": 0}
        events.append(("response.output_item.added", {"output_index": 0, "item": item}))
        events.append(("response.content_part.added", {**where, "part": part}))
        for piece in script.deltas():
            events.append(("response.output_text.delta", {**where, "delta": piece, "logprobs": []}))
        index = 1
    for offset, call in enumerate(script.tool_calls):
        item = {
            "type": "function_call",
            "id": f"fc_{call.id}",
            "call_id": call.id,
            "name": call.name,
            "arguments": "",
            "status": "in_progress",
        }
        events.append(
            ("response.output_item.added", {"output_index": index + offset, "item": item})
        )
    events.append(("response.completed", {"response": _response(body, script)}))
    return [
        f"event: {name}\ndata: {json.dumps({'type': name, 'sequence_number': n, **data})}\n\n"
        for n, (name, data) in enumerate(events)
    ]


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = []
    for index, _ in enumerate(inputs):
        vector = [0.1 * (index + 1), 0.2, 0.3]
        embedding: Any = vector
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = {"prompt_tokens": 5, "total_tokens": 5}
    return {"object": "list", "data": data, "model": body["model"], "usage": usage}


def _anthropic_usage(output_tokens: int = OUTPUT_TOKENS) -> dict[str, Any]:
    return {
        "input_tokens": INPUT_TOKENS,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": 4,
        "cache_creation_input_tokens": 0,
    }


def _message(body: dict[str, Any], script: Script) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if script.answer:
        content.append({"type": "text", "text": script.answer})
    content += [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in script.tool_calls
    ]
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": body["model"] + RESPONSE_MODEL_SUFFIX,
        "content": content,
        "stop_reason": "tool_use" if script.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(),
    }


def _message_events(body: dict[str, Any], script: Script) -> list[str]:
    start = {**_message(body, script), "content": [], "stop_reason": None}
    start["usage"] = _anthropic_usage(output_tokens=1)
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": start})]
    index = 0
    if script.answer:
        events.append(
            ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        )
        events.append(("ping", {}))
        for piece in script.deltas():
            delta = {"type": "text_delta", "text": piece}
            events.append(("content_block_delta", {"index": 0, "delta": delta}))
        events.append(("content_block_stop", {"index": 0}))
        index = 1
    for offset, call in enumerate(script.tool_calls):
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        events.append(("content_block_start", {"index": index + offset, "content_block": block}))
        delta = {"type": "input_json_delta", "partial_json": json.dumps(call.arguments)}
        events.append(("content_block_delta", {"index": index + offset, "delta": delta}))
        events.append(("content_block_stop", {"index": index + offset}))
    stop_reason = "tool_use" if script.tool_calls else "end_turn"
    events.append(
        (
            "message_delta",
            {
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": OUTPUT_TOKENS},
            },
        )
    )
    events.append(("message_stop", {}))
    return [
        f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n" for name, data in events
    ]


def _error(path: str, status: int) -> dict[str, Any]:
    kind = "invalid_request_error" if status == 400 else "api_error"
    message = "scripted error"
    if path == "/v1/messages":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


# --------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs
    disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stall)
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        state = self.server.state
        state.requests.append((self.path, body))
        script = state.script
        try:
            if script.delay:
                time.sleep(script.delay)
            if script.status != 200:
                self._send_json(_error(self.path, script.status), script.status)
            elif self.path == "/v1/chat/completions":
                if body.get("stream"):
                    self._send_sse(_chat_chunks(body, script))
                else:
                    self._send_json(_chat_completion(body, script))
            elif self.path == "/v1/responses":
                if body.get("stream"):
                    self._send_sse(_response_events(body, script))
                else:
                    self._send_json(_response(body, script))
            elif self.path == "/v1/embeddings":
                self._send_json(_embeddings(body))
            elif self.path == "/v1/messages":
                if body.get("stream"):
                    self._send_sse(_message_events(body, script))
                else:
                    self._send_json(_message(body, script))
            else:
                self._send_json({"error": {"message": "not found"}}, 404)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout test)

    def _send_json(self, payload: Any, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_test")
        self.end_headers()
        self.wfile.write(data)

    def _send_sse(self, events: list[str]) -> None:
        data = "".join(events).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_test")
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    state: LLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout test) resets its connection: not an error here."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def start_server() -> tuple[_Server, LLMServer]:
    server = _Server(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    assert isinstance(host, str)
    server.state = LLMServer(url=f"http://{host}:{port}", host=host, port=port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.state


class Suppressed:
    """``with Suppressed():`` sets OTel's suppress-instrumentation key."""

    def __enter__(self) -> None:
        self._token = otel_context.attach(
            otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
        )

    def __exit__(self, *exc: object) -> None:
        otel_context.detach(self._token)


# --------------------------------------------------------------------------- assertions


def pop_exact(attributes: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Pop every expected key, then assert nothing unexpected is left.

    A callable expected value is a predicate on the actual one; sequences compare as lists.
    """
    remaining = dict(attributes)
    for key, value in expected.items():
        assert key in remaining, f"missing attribute {key}"
        actual = remaining.pop(key)
        if callable(value):
            assert value(actual), f"{key}={actual!r}"
        elif isinstance(value, (list, tuple)):
            assert list(actual) == list(value), key
        else:
            assert actual == value, f"{key}={actual!r}, expected {value!r}"
    assert remaining == {}, f"unexpected attributes: {remaining}"


def is_uuid7(value: object) -> bool:
    try:
        return uuid.UUID(str(value)).version == 7
    except ValueError:
        return False


def is_seconds(value: object) -> bool:
    return isinstance(value, float) and 0.0 <= value < 10.0


def json_equal(expected: Any) -> Callable[[object], bool]:
    """A predicate: the attribute is a JSON string equal to ``expected``."""
    return lambda actual: isinstance(actual, str) and json.loads(actual) == expected
