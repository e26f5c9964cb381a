#!/usr/bin/env python3
"""Benchmarks of the LLM-client instrumentation: added latency per call and per streamed chunk.

    .venv/bin/python benchmarks/bench_llm.py [--quick] [--transport memory|loopback]
                                             [--rounds N] [--calls N] [--clock wall|cpu]

The real ``openai`` client runs against two transports: ``loopback`` — the local test server of
``tests/llm/llm_support.py`` (HTTP over 127.0.0.1, keep-alive) — and ``memory`` — an httpx2
``MockTransport`` answering the same payloads without a socket (less noise: the client's own
work is all that remains). Configurations are measured in interleaved rounds in one process,
instrumenting and uninstrumenting between them, in an order rotated every round; the median of
the rounds is reported:

* ``bare`` — no instrumentation;
* ``openai-v2`` — opentelemetry-instrumentation-openai-v2 (the official instrumentation);
* ``ragprov`` — ragprov's openai instrumentor (span, request/response attributes, step id);
* ``ragprov + processor`` — the same, with the ``ProvenanceSpanProcessor`` consuming the side
  channel (prompt and answer recorded per call; its worker thread fingerprints them).

Each configuration gets a new SDK tracer provider with a no-op exporter every round (shut down
after it, so a provenance processor consumes the side channel only in its own configuration).

Measured: one non-streamed chat completion (``added`` = time over bare, also paired per round
with quartiles, and the median over rounds of ragprov's added time over openai-v2's); one
streamed completion of ``CHUNKS`` deltas, per chunk (its time over bare, minus the per-call cost,
divided by the number of chunks); each instrumentation's wrapper alone, called without the client
(:func:`wrappers_alone`); and the cost per chunk of ragprov's stream proxy alone (iterating the
chunks a stream yielded through it versus directly). On a shared machine the end-to-end figures
are noisy (a 1 % change of a streamed call is ~0.5 µs per chunk); ``--clock cpu`` with the
memory transport takes out the time spent waiting for a core. The last two are steadier.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx2
import openai
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2Instrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from ragprov import sidechannel
from ragprov.instrumentation._llm_call import LLMCall
from ragprov.instrumentation._llm_model import ResultTypes
from ragprov.instrumentation._llm_streams import SyncStreamProxy
from ragprov.instrumentation.openai import ROUTES, OpenAIInstrumentor
from ragprov.processor import ProvenanceSpanProcessor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "llm"))
from llm_support import Script, _chat_chunks, start_server

MODEL = "gpt-bench"
CHUNKS = 500
MESSAGES = [
    {"role": "system", "content": "Answer from the context only."},
    {"role": "user", "content": "Context:\n" + "Acme Robotics revenue. " * 200 + "\nQuestion: ?"},
]


class NoopExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def provider(*, with_processor: bool = False) -> TracerProvider:
    result = TracerProvider()
    downstream = SimpleSpanProcessor(NoopExporter())
    result.add_span_processor(ProvenanceSpanProcessor(downstream) if with_processor else downstream)
    return result


#: The clock of :func:`timed`: wall time, or with ``--clock cpu`` this thread's CPU time (on a
#: shared machine it leaves out the time the thread waited for a core; use it with the memory
#: transport, where the whole call runs on this thread).
CLOCK = time.perf_counter_ns


def timed(function: Callable[[], Any], calls: int) -> float:
    """Mean microseconds per call over ``calls`` calls."""
    start = CLOCK()
    for _ in range(calls):
        function()
    return (CLOCK() - start) / calls / 1000


class Configuration:
    """An instrumentor with its own tracer provider, built on entering and shut down on leaving:
    a provenance processor consumes the side channel only while its configuration runs (a
    processor left alive would make every other ragprov configuration record prompts too)."""

    def __init__(self, name: str, instrumentor: Any, with_processor: bool = False):
        self.name = name
        self.instrumentor = instrumentor
        self.with_processor = with_processor
        self.tracer_provider: TracerProvider | None = None

    def __enter__(self) -> None:
        if self.instrumentor is not None:
            self.tracer_provider = provider(with_processor=self.with_processor)
            self.instrumentor.instrument(tracer_provider=self.tracer_provider)
        assert sidechannel.is_active() == self.with_processor

    def __exit__(self, *exc: object) -> None:
        if self.instrumentor is not None:
            self.instrumentor.uninstrument()
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
            self.tracer_provider = None


def chat_completion_body(answer: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940},
        }
    ).encode()


def clients(transport: str) -> tuple[openai.OpenAI, Callable[[int], None], Callable[[], None]]:
    """A client on ``transport`` (``loopback``: the local test server; ``memory``: an httpx2
    MockTransport answering the same payloads without a socket), a function setting the number
    of streamed chunks (0: a JSON answer), and a function stopping the transport."""
    if transport == "loopback":
        server, state = start_server()

        def script(chunks: int) -> None:
            words = " ".join(f"w{i}" for i in range(chunks))
            state.script = Script(answer=words, pieces=chunks) if chunks else Script()

        client = openai.OpenAI(base_url=state.openai_url, api_key="bench", max_retries=0)
        return client, script, server.shutdown

    bodies: dict[bool, bytes] = {False: chat_completion_body("Acme grew 26.6%.")}

    def memory_script(chunks: int) -> None:
        if chunks:
            body = {"model": MODEL, "stream": True}
            words = " ".join(f"w{i}" for i in range(chunks))
            bodies[True] = "".join(_chat_chunks(body, Script(answer=words, pieces=chunks))).encode()

    def handler(request: httpx2.Request) -> httpx2.Response:
        stream = b'"stream":true' in request.content
        content_type = "text/event-stream" if stream else "application/json"
        return httpx2.Response(200, content=bodies[stream], headers={"content-type": content_type})

    client = openai.OpenAI(
        base_url="http://bench.invalid/v1",
        api_key="bench",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    return client, memory_script, lambda: None


def measure(transport: str, rounds: int, calls: int) -> dict[str, dict[str, list[float]]]:
    client, script, stop = clients(transport)
    configurations = [
        Configuration("bare", None),
        Configuration("openai-v2", OpenAIV2Instrumentor()),
        Configuration("ragprov", OpenAIInstrumentor()),
        Configuration("ragprov + processor", OpenAIInstrumentor(), with_processor=True),
    ]

    def call() -> None:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)

    def stream() -> None:
        for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            pass

    samples: dict[str, dict[str, list[float]]] = {
        c.name: {"call": [], "stream": []} for c in configurations
    }
    script(0)
    for configuration in configurations:  # warm-up
        with configuration:
            timed(call, 20)
    for round_ in range(rounds):
        # Rotate the order, so that no configuration always follows the same one.
        shift = round_ % len(configurations)
        for configuration in configurations[shift:] + configurations[:shift]:
            with configuration:
                script(0)
                samples[configuration.name]["call"].append(timed(call, calls))
                script(CHUNKS)
                samples[configuration.name]["stream"].append(timed(stream, max(1, calls // 10)))
    stop()
    return samples


def medians(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {
        name: {kind: statistics.median(values) for kind, values in kinds.items()}
        for name, kinds in samples.items()
    }


def paired_call_costs(
    samples: dict[str, dict[str, list[float]]],
) -> dict[str, tuple[float, float, float]]:
    """Added µs per non-streamed call, paired per round (a configuration's time minus bare's in
    the same round): (first quartile, median, third quartile) per configuration."""
    bare = samples["bare"]["call"]
    result = {}
    for name, kinds in samples.items():
        if name == "bare":
            continue
        added = [value - base for value, base in zip(kinds["call"], bare, strict=True)]
        low, median, high = statistics.quantiles(added, n=4)
        result[name] = (low, median, high)
    return result


def paired_ratio(samples: dict[str, dict[str, list[float]]], name: str, reference: str) -> float:
    """Median over rounds of (``name``'s added time / ``reference``'s added time)."""
    bare = samples["bare"]["call"]
    ratios = [
        (value - base) / (other - base)
        for value, other, base in zip(
            samples[name]["call"], samples[reference]["call"], bare, strict=True
        )
        if other > base
    ]
    return statistics.median(ratios)


def proxy_per_chunk(rounds: int) -> dict[str, float]:
    """ns per chunk, without the network: iterating the chunks a stream yielded (as the client
    built them) directly, and through ragprov's stream proxy (accumulating the answer; the span
    and the side channel are touched once, at the end)."""
    client, script, _ = clients("memory")
    script(2000)
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    chunks = list(stream)
    tracer = provider().get_tracer("bench")
    route = ROUTES["/chat/completions"]
    direct: list[float] = []
    proxied: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _chunk in iter(chunks):
            pass
        direct.append((time.perf_counter_ns() - start) / len(chunks))
        call = LLMCall(tracer.start_span("chat"), True, route, False, ResultTypes())
        start = time.perf_counter_ns()
        for _chunk in SyncStreamProxy(iter(chunks), call):
            pass
        proxied.append((time.perf_counter_ns() - start) / len(chunks))
    return {"direct": statistics.median(direct), "proxy": statistics.median(proxied)}


def wrappers_alone(rounds: int, calls: int = 2000) -> dict[str, float]:
    """µs per call of each instrumentation's own wrapper, without the client: the wrapper that
    ``instrument()`` installed is called in a loop with a ``wrapped`` that returns a parsed chat
    completion at once (interleaved rounds, medians; ``bare`` is calling ``wrapped`` itself).
    Both wrappers create and end their SDK span and read the request and the response."""
    from openai import _base_client
    from openai._models import FinalRequestOptions
    from openai.resources.chat.completions import Completions
    from openai.types.chat import ChatCompletion

    client, _, _ = clients("memory")
    completion = ChatCompletion.model_validate(json.loads(chat_completion_body("Acme grew.")))
    body = {"model": MODEL, "messages": MESSAGES}

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return completion

    def installed_wrapper(instrumentor: Any, owner: type, name: str) -> Any:
        instrumentor.instrument(tracer_provider=provider())
        wrapper = vars(owner)[name]._self_wrapper
        instrumentor.uninstrument()
        return wrapper

    v2 = installed_wrapper(OpenAIV2Instrumentor(), Completions, "create")
    ours = installed_wrapper(OpenAIInstrumentor(), _base_client.SyncAPIClient, "request")
    options = FinalRequestOptions.construct(method="post", url="/chat/completions", json_data=body)
    request_args = (ChatCompletion, options)
    request_kwargs = {"stream": False, "stream_cls": None}
    functions: dict[str, Callable[[], Any]] = {
        "bare": lambda: wrapped(**body),
        "openai-v2": lambda: v2(wrapped, client.chat.completions, (), body),
        "ragprov": lambda: ours(wrapped, client, request_args, request_kwargs),
    }
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for function in functions.values():  # warm-up
        timed(function, calls)
    for _ in range(rounds):
        for name, function in functions.items():
            samples[name].append(timed(function, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def option(name: str, default: str) -> str:
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return default


def main() -> None:
    quick = "--quick" in sys.argv
    rounds = int(option("--rounds", "5" if quick else "15"))
    calls = int(option("--calls", "40" if quick else "150"))
    transports = option("--transport", "loopback,memory").split(",")
    global CLOCK
    CLOCK = time.thread_time_ns if option("--clock", "wall") == "cpu" else time.perf_counter_ns
    print(f"clock: {option('--clock', 'wall')}")
    for transport in transports:
        samples = measure(transport, rounds, calls)
        results = medians(samples)
        bare = results["bare"]
        print(f"\nchat completion, {transport} transport ({rounds} interleaved rounds, medians)")
        print(
            f"{'configuration':<22}{'µs/call':>9}{'added':>9}{'ratio':>7}"
            f"{'µs/stream':>11}{'added/chunk':>13}"
        )
        for name, values in results.items():
            added = values["call"] - bare["call"]
            # The per-call cost is paid by a streamed call too: the rest is per chunk.
            per_chunk = (values["stream"] - bare["stream"] - added) / CHUNKS
            print(
                f"{name:<22}{values['call']:>9.1f}{added:>+9.1f}"
                f"{values['call'] / bare['call']:>7.3f}{values['stream']:>11.1f}"
                f"{per_chunk:>+11.2f}µs"
            )
        print("added µs per call, paired per round (quartiles):")
        for name, (low, median, high) in paired_call_costs(samples).items():
            print(f"  {name:<22}{median:>+8.1f}  [{low:+.1f}, {high:+.1f}]")
        ratio = paired_ratio(samples, "ragprov", "openai-v2")
        print(f"ragprov / openai-v2 added time per call, median of per-round ratios: {ratio:.2f}")
    alone = wrappers_alone(rounds)
    print(f"\nthe instrumentations' wrappers alone, µs per call ({rounds} interleaved rounds)")
    for name in ("openai-v2", "ragprov"):
        added = alone[name] - alone["bare"]
        print(f"  {name:<22}{added:>8.1f}")
    ratio = (alone["ragprov"] - alone["bare"]) / (alone["openai-v2"] - alone["bare"])
    print(f"  ratio ragprov / openai-v2: {ratio:.2f}")
    proxy = proxy_per_chunk(5 if quick else 15)
    added_ns = proxy["proxy"] - proxy["direct"]
    print(
        f"\nstream proxy alone, per chunk: {proxy['proxy']:.0f} ns "
        f"(direct iteration {proxy['direct']:.0f} ns; added {added_ns:.0f} ns)"
    )


if __name__ == "__main__":
    main()
