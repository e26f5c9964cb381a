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
* ``POST /records/namespaces/{namespace}/search`` (the records API of an index with integrated
  embedding) — ``{"query": {"top_k", "inputs"? {"text"} | "vector"? {"values"?,
  "sparse_indices"?, "sparse_values"?} | "id"?, "filter"?}, "fields"?, "rerank"? {"model",
  "rank_fields", "top_n"?}}`` → ``{"result": {"hits": [{"_id", "_score", "fields"}]},
  "usage": {"read_units", "embed_total_tokens"?, "rerank_units"?}}``, snake_case as on the wire
  (the client decodes it without renaming). ``__default__`` is the default namespace. Text
  ``inputs`` are embedded with the ``embed`` function the index was made with (the service's
  hosted model); ``fields`` limits the returned record fields (all when absent); the stand-in's
  "reranker" scores a hit by the share of the query's words found in its first ``rank_fields``
  field. Records are written with :meth:`FakeIndex.add_records` (the client's ``upsert_records``
  sends NDJSON, which the stand-in does not parse);
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
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

RECORDS_PREFIX = "/records/namespaces/"
SEARCH_SUFFIX = "/search"
DEFAULT_NAMESPACE = "__default__"


class FakeIndex:
    def __init__(
        self,
        metric: str = "cosine",
        dimension: int = 32,
        embed: Callable[[Sequence[str]], Sequence[Sequence[float]]] | None = None,
        text_field: str = "chunk_text",
    ) -> None:
        self.metric = metric
        self.dimension = dimension
        self.embed = embed
        """The hosted model of an integrated index (None: the index takes vectors only)."""
        self.text_field = text_field
        """The field the model embeds (the index's ``field_map`` ``{"text": text_field}``)."""
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
                return status, _error(status, message)
            if path == "/vectors/upsert":
                return 200, self.upsert(body)
            if path == "/query":
                return 200, self.query(body)
            if path == "/describe_index_stats":
                return 200, self.stats()
            if path.startswith(RECORDS_PREFIX) and path.endswith(SEARCH_SUFFIX):
                namespace = unquote(path[len(RECORDS_PREFIX) : -len(SEARCH_SUFFIX)])
                return self.search(namespace, body)
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

    def add_records(self, records: Sequence[Mapping[str, Any]], namespace: str = "") -> None:
        """Write records ``{"_id", text_field, other fields…}`` as the service does on
        ``upsert_records``: the text field is embedded, every field is kept."""
        if self.embed is None:
            raise ValueError("not an integrated index: it has no model to embed records")
        stored = self.namespaces.setdefault(namespace, {})
        vectors = self.embed([record[self.text_field] for record in records])
        for record, vector in zip(records, vectors, strict=True):
            fields = {key: value for key, value in record.items() if key != "_id"}
            stored[record["_id"]] = {
                "id": record["_id"],
                "values": list(vector),
                "metadata": fields,
            }

    def search(self, namespace: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        query = body["query"]
        usage: dict[str, Any] = {"read_units": 1}
        vector = query.get("vector") or {}
        dense = vector.get("values")
        sparse = None
        if vector.get("sparse_indices"):
            sparse = {"indices": vector["sparse_indices"], "values": vector["sparse_values"]}
        text = (query.get("inputs") or {}).get("text")
        if text is not None:
            if self.embed is None:
                return 400, _error(400, "Integrated inference is not configured for this index")
            dense = list(self.embed([text])[0])
            usage["embed_total_tokens"] = len(text.split())
        answer = self.query(
            {
                "namespace": "" if namespace == DEFAULT_NAMESPACE else namespace,
                "topK": query["top_k"],
                "vector": dense,
                "id": query.get("id"),
                "sparseVector": sparse,
                "filter": query.get("filter"),
                "includeMetadata": True,
            }
        )
        wanted = body.get("fields")
        hits = [
            {
                "_id": match["id"],
                "_score": match["score"],
                "fields": {
                    key: value
                    for key, value in (match.get("metadata") or {}).items()
                    if wanted is None or key in wanted
                },
            }
            for match in answer["matches"]
        ]
        rerank = body.get("rerank")
        if rerank is not None:
            hits = self._rerank(hits, rerank, text or "")
            usage["rerank_units"] = 1
        return 200, {"result": {"hits": hits}, "usage": usage}

    @staticmethod
    def _rerank(
        hits: list[dict[str, Any]], rerank: Mapping[str, Any], text: str
    ) -> list[dict[str, Any]]:
        words = set(text.lower().split())
        field = rerank["rank_fields"][0]
        for hit in hits:
            found = set(str(hit["fields"].get(field, "")).lower().split())
            hit["_score"] = len(words & found) / len(words) if words else 0.0
        hits.sort(key=lambda hit: hit["_score"], reverse=True)
        return hits[: rerank.get("top_n", len(hits))]

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


def _error(status: int, message: str) -> dict[str, Any]:
    return {"code": 3 if status == 400 else 5, "message": message, "details": []}


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
