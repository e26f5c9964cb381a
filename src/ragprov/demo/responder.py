"""A local OpenAI-compatible responder with scripted answers, so the demo needs no API key.

It serves ``POST /v1/chat/completions`` (OpenAI) and ``POST /v1/messages`` (Anthropic, without
streaming) on 127.0.0.1 (a free port) and answers each request with the script entry for the
question found in the last user message — the line starting with ``Question:`` — or, when no
entry matches, with a fallback that acknowledges the gap. Streaming chat completions
(``"stream": true``) get server-sent events ending with ``data: [DONE]``, as the real service
sends them. It is the real ``openai`` / ``anthropic`` client that talks to it, so the spans come
from the same code path as with a real model.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FALLBACK_ANSWER = "I couldn't find that in the documents I was given."


class _Handler(BaseHTTPRequestHandler):
    server: _ResponderServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._send_json(400, {"error": {"message": "invalid JSON", "type": "invalid_request"}})
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        answer = self.server.answer_for(body.get("messages") or [])
        model = str(body.get("model") or "demo-model")
        if path == "/v1/messages" and not body.get("stream"):
            self._send_json(200, _anthropic_message(model, answer))
            return
        if path != "/v1/chat/completions":
            self._send_json(
                404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
            )
            return
        if body.get("stream"):
            self._stream(model, answer)
        else:
            self._send_json(200, _completion(model, answer))

    def _send_json(self, status: int, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, model: str, answer: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        words = answer.split(" ")
        for index, word in enumerate(words):
            piece = word if index == 0 else f" {word}"
            self._event(_chunk(model, {"content": piece}, None))
        self._event(_chunk(model, {}, "stop"))
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, payload: Mapping[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())

    def log_message(self, format: str, *args: Any) -> None:  # keep the demo's output clean
        pass


class _ResponderServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: Mapping[str, str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = {_normalise(question): answer for question, answer in script.items()}

    def answer_for(self, messages: list[Any]) -> str:
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                question = _question(_text(message.get("content")))
                return self.script.get(_normalise(question), FALLBACK_ANSWER)
        return FALLBACK_ANSWER


@contextmanager
def running_responder(script: Mapping[str, str]) -> Iterator[str]:
    """Serve ``script`` (question -> answer); yields the base URL for ``OpenAI(base_url=...)``."""
    server = _ResponderServer(script)
    thread = threading.Thread(target=server.serve_forever, name="ragprov-demo-llm", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _text(content: Any) -> str:
    """A message's text: a plain string, or the text blocks of a content list (Anthropic)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(block.get("text", ""))
            for block in content
            if isinstance(block, Mapping) and block.get("type") == "text"
        )
    return ""


def _anthropic_message(model: str, answer: str) -> dict[str, Any]:
    return {
        "id": f"msg_demo_{time.monotonic_ns()}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": answer}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": len(answer.split())},
    }


def _question(prompt: str) -> str:
    for line in reversed(prompt.splitlines()):
        if line.startswith("Question:"):
            return line.removeprefix("Question:")
    return prompt


def _normalise(question: str) -> str:
    return " ".join(question.split()).lower()


def _completion(model: str, answer: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-demo-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 0,
            "completion_tokens": len(answer.split()),
            "total_tokens": len(answer.split()),
        },
    }


def _chunk(model: str, delta: Mapping[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-demo-stream",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": dict(delta), "finish_reason": finish_reason}],
    }
