"""A local stand-in for Pinecone, which is a cloud-only service (no embedded or local mode ships
with the client).

:class:`FakeIndex` keeps one index's vectors in memory and answers like Pinecone's data plane:

* ``POST /vectors/upsert`` — ``{"vectors": [{"id", "values", "sparseValues"?, "metadata"?}],
  "namespace"?}`` → ``{"upsertedCount": n}``;
* ``POST /query`` — ``{"topK", "vector"? | "id"?, "sparseVector"?, "filter"?, "includeValues",
  "includeMetadata", "namespace"?}`` → ``{"matches": [{"id", "score", "values", "metadata"?}],
  "namespace", "usage": {"readUnits"}}``. Scores follow the index metric as Pinecone documents
  them: cosine similarity, dot product (dense + sparse for hybrid queries), or the *squared*
  Euclidean distance (ascending) for ``euclidean``;
* ``POST /describe_index_stats`` → ``{"namespaces", "dimension", "indexFullness",
  "totalVectorCount", "metric", "vectorType"}``.

Filters support equality (``{"k": v}``, ``{"k": {"$eq": v}}``) and ``$in``. Errors answer like the
service (``{"code", "message", "details"}``, HTTP 400 / 404). :class:`PineconeStandIn` serves one
:class:`FakeIndex` over HTTP on 127.0.0.1 (a ``ThreadingHTTPServer`` on a free port), which is
what the real ``pinecone`` client talks to in the tests; :class:`FakeGrpcChannel` answers the
calls ``GrpcIndex`` makes on its (Rust) gRPC channel, with the dict shapes that channel returns.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeIndex:
    def __init__(self, metric: str = "cosine", dimension: int = 32) -> None:
        self.metric = metric
        self.dimension = dimension
        self.namespaces: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.fail: tuple[int, str] | None = None
        self._lock = threading.Lock()

    # ---- operations (camelCase bodies, as on the wire)

    def handle(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append((path, body))
            if self.fail is not None:
                status, message = self.fail
                return status, {
                    "code": 3 if status == 400 else 5,
                    "message": message,
                    "details": [],
                }
            if path == "/vectors/upsert":
                return 200, self.upsert(body)
            if path == "/query":
                return 200, self.query(body)
            if path == "/describe_index_stats":
                return 200, self.stats()
        return 404, {"code": 5, "message": f"unknown path {path}", "details": []}

    def upsert(self, body: Mapping[str, Any]) -> dict[str, Any]:
        namespace = self.namespaces.setdefault(body.get("namespace") or "", {})
        for vector in body["vectors"]:
            namespace[vector["id"]] = dict(vector)
        return {"upsertedCount": len(body["vectors"])}

    def query(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body.get("namespace") or ""
        records = self.namespaces.get(name, {})
        dense = body.get("vector")
        if body.get("id") is not None:
            dense = records.get(body["id"], {}).get("values")
        sparse = body.get("sparseVector")
        candidates = [
            (self._score(dense, sparse, record), record)
            for record in records.values()
            if _matches_filter(record.get("metadata") or {}, body.get("filter") or {})
        ]
        candidates.sort(key=lambda pair: pair[0], reverse=self.metric != "euclidean")
        matches = []
        for score, record in candidates[: body["topK"]]:
            match: dict[str, Any] = {"id": record["id"], "score": score, "values": []}
            if body.get("includeValues"):
                match["values"] = record.get("values") or []
            if body.get("includeMetadata") and record.get("metadata"):
                match["metadata"] = record["metadata"]
            matches.append(match)
        return {"matches": matches, "namespace": name, "usage": {"readUnits": 5}}

    def stats(self) -> dict[str, Any]:
        return {
            "namespaces": {
                name: {"vectorCount": len(records)} for name, records in self.namespaces.items()
            },
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(len(records) for records in self.namespaces.values()),
            "metric": self.metric,
            "vectorType": "dense",
        }

    def _score(self, dense: Any, sparse: Any, record: Mapping[str, Any]) -> float:
        values = record.get("values") or []
        if self.metric == "euclidean":
            return float(sum((a - b) ** 2 for a, b in zip(dense or [], values, strict=False)))
        score = 0.0
        if dense:
            score = sum(a * b for a, b in zip(dense, values, strict=False))
            if self.metric == "cosine":
                norms = math.sqrt(sum(a * a for a in dense)) * math.sqrt(sum(b * b for b in values))
                score = score / norms if norms else 0.0
        if sparse:
            stored = record.get("sparseValues") or {"indices": [], "values": []}
            weights = dict(zip(stored["indices"], stored["values"], strict=True))
            score += sum(
                value * weights.get(index, 0.0)
                for index, value in zip(sparse["indices"], sparse["values"], strict=True)
            )
        return float(score)

    # ---- the gRPC channel's snake_case dict shapes

    def grpc_query(self, top_k: int, **kwargs: Any) -> dict[str, Any]:
        body = {
            "topK": top_k,
            "vector": kwargs.get("vector"),
            "id": kwargs.get("id"),
            "namespace": kwargs.get("namespace"),
            "filter": kwargs.get("filter"),
            "sparseVector": kwargs.get("sparse_vector"),
            "includeValues": kwargs.get("include_values"),
            "includeMetadata": kwargs.get("include_metadata"),
        }
        status, answer = self.handle("/query", body)
        if status != 200:
            raise RuntimeError(answer["message"])
        return {
            "matches": answer["matches"],
            "namespace": answer["namespace"],
            "usage": {"read_units": 5},
        }

    def grpc_upsert(self, vectors: Sequence[Mapping[str, Any]], namespace: Any) -> dict[str, Any]:
        converted = []
        for vector in vectors:
            item = {key: value for key, value in vector.items() if key != "sparse_values"}
            if "sparse_values" in vector:
                item["sparseValues"] = vector["sparse_values"]
            converted.append(item)
        status, answer = self.handle(
            "/vectors/upsert", {"vectors": converted, "namespace": namespace}
        )
        if status != 200:
            raise RuntimeError(answer["message"])
        return {"upserted_count": answer["upsertedCount"]}


def _matches_filter(metadata: Mapping[str, Any], condition: Mapping[str, Any]) -> bool:
    for key, expected in condition.items():
        value = metadata.get(key)
        if isinstance(expected, Mapping):
            if "$eq" in expected and value != expected["$eq"]:
                return False
            if "$in" in expected and value not in expected["$in"]:
                return False
        elif value != expected:
            return False
    return True


class PineconeStandIn:
    """Serves a :class:`FakeIndex` over HTTP on 127.0.0.1 (started and stopped by the tests)."""

    def __init__(self, index: FakeIndex) -> None:
        self.index = index
        fake = index

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                status, answer = fake.handle(self.path.split("?", 1)[0], json.loads(raw or b"{}"))
                self._send(status, answer)

            def do_GET(self) -> None:
                self._send(404, {"code": 5, "message": "not found", "details": []})

            def _send(self, status: int, answer: Mapping[str, Any]) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def host(self) -> str:
        """What ragprov reports as the index (``host:port``: not a pinecone.io host)."""
        return self.url.removeprefix("http://")

    def __enter__(self) -> PineconeStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class FakeGrpcChannel:
    """Replaces ``GrpcIndex._channel`` (the Rust gRPC transport) with :class:`FakeIndex`."""

    def __init__(self, index: FakeIndex) -> None:
        self.index = index

    def query(self, top_k: int, **kwargs: Any) -> dict[str, Any]:
        return self.index.grpc_query(top_k, **kwargs)

    def upsert(self, vectors: Sequence[Mapping[str, Any]], namespace: Any, **kwargs: Any) -> Any:
        return self.index.grpc_upsert(vectors, namespace)

    def describe_index_stats(self, **kwargs: Any) -> dict[str, Any]:
        stats = self.index.stats()
        return {"namespaces": {}, "dimension": stats["dimension"], "metric": stats["metric"]}

    def close(self) -> None:
        pass
