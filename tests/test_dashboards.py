"""The dashboard files in docs/dashboards/ parse, use real attribute names and cover the four
questions: utilisation, diagnosis counts, failing chunk sets, ungrounded answers."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragprov.semconv.attributes import ALL_RAG_ATTRIBUTES, RagDiagnosisValues

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "docs" / "dashboards"
FILES = {
    "grafana": "grafana-tempo.json",
    "datadog": "datadog.json",
    "honeycomb": "honeycomb-board.json",
}

DIAGNOSES = frozenset(member.value for member in RagDiagnosisValues)
FAILING = frozenset({"ungrounded_answer", "navigation", "data_problem", "retrieval_composition"})
# Names that are not rag.*/gen_ai.* but standard in each backend.
STANDARD_NAMES = {
    "grafana": {"service.name"},  # resource.service.name
    "datadog": {"service"},  # Datadog's reserved service tag
    "honeycomb": {"service.name", "trace.parent_id"},
}
# Filter and calculation operators of Honeycomb's query specification.
HONEYCOMB_CALCULATIONS = {"COUNT", "SUM", "AVG", "COUNT_DISTINCT", "MAX", "MIN", "HEATMAP"} | {
    f"P{p}" for p in ("001", "01", "05", "10", "25", "50", "75", "90", "95", "99", "999")
}
HONEYCOMB_FILTER_OPS = {
    "=", "!=", ">", ">=", "<", "<=", "starts-with", "does-not-start-with", "contains",
    "does-not-contain", "exists", "does-not-exist", "in", "not-in",
}  # fmt: skip
# Aggregations of Datadog's event-platform (spans) queries.
DATADOG_AGGREGATIONS = {
    "count", "cardinality", "median", "pc75", "pc90", "pc95", "pc98", "pc99",
    "sum", "min", "max", "avg",
}  # fmt: skip


def official_refs() -> set[str]:
    """gen_ai.* (and other official) attributes the span definitions reference."""
    spans = yaml.safe_load((ROOT / "semconv" / "spans" / "rag-spans.yaml").read_text("utf-8"))
    return {
        attribute["ref"]
        for group in spans["groups"]
        for attribute in group.get("attributes", [])
        if not attribute["ref"].startswith("rag.")
    }


KNOWN = set(ALL_RAG_ATTRIBUTES) | official_refs()


def load(kind: str) -> dict[str, Any]:
    loaded = json.loads((DASHBOARDS / FILES[kind]).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


# -- queries of each format -------------------------------------------------------------------


def grafana_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(panel title, language, query) of every target."""
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            if "query" in target:
                yield panel["title"], "traceql", target["query"]
            if "expr" in target:
                yield panel["title"], "promql", target["expr"]


def datadog_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for widget in dashboard.get("widgets", []):
        definition = widget["definition"]
        for request in definition.get("requests", []):
            for query in request.get("queries", []):
                yield definition.get("title", ""), query


def honeycomb_queries(board: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for query in board.get("queries", []):
        yield query["name"], query["query"]


# -- attribute references ---------------------------------------------------------------------

TRACEQL_ATTRIBUTE = re.compile(r"\b(?:span|resource)\.([A-Za-z_][A-Za-z0-9_.]*[A-Za-z0-9_])")
PROMQL_LABEL = re.compile(r"\b((?:rag|gen_ai)_[a-z0-9_]+)\b")
DATADOG_ATTRIBUTE = re.compile(r"@([A-Za-z_][A-Za-z0-9_.]*[A-Za-z0-9_])")


def attribute_refs(kind: str, dashboard: dict[str, Any]) -> set[str]:
    refs: set[str] = set()
    if kind == "grafana":
        prometheus_names = {name.replace(".", "_"): name for name in KNOWN}
        for _, language, query in grafana_queries(dashboard):
            if language == "traceql":
                refs |= set(TRACEQL_ATTRIBUTE.findall(query))
            else:
                for label in PROMQL_LABEL.findall(query):
                    refs.add(prometheus_names.get(label, label))
    elif kind == "datadog":
        for _, query in datadog_queries(dashboard):
            refs |= set(DATADOG_ATTRIBUTE.findall(query["search"]["query"]))
            metric = query["compute"].get("metric")
            facets = [metric] + [g["facet"] for g in query.get("group_by", [])]
            facets += [g["sort"].get("metric") for g in query.get("group_by", [])]
            refs |= {f.removeprefix("@") for f in facets if f}
    else:
        for _, spec in honeycomb_queries(dashboard):
            refs |= {c["column"] for c in spec.get("calculations", []) if "column" in c}
            refs |= {f["column"] for f in spec.get("filters", [])}
            refs |= set(spec.get("breakdowns", []))
            refs |= {o["column"] for o in spec.get("orders", []) if "column" in o}
    return refs


def unknown_refs(kind: str, dashboard: dict[str, Any]) -> set[str]:
    return attribute_refs(kind, dashboard) - KNOWN - STANDARD_NAMES[kind]


# -- diagnosis values -------------------------------------------------------------------------

TRACEQL_DIAGNOSIS = re.compile(r'span\.rag\.diagnosis\s*(?:=~|=|!=)\s*"([^"]*)"')
PROMQL_DIAGNOSIS = re.compile(r'rag_diagnosis\s*(?:=~|=|!=)\s*"([^"]*)"')
DATADOG_DIAGNOSIS = re.compile(r"@rag\.diagnosis:(\([^)]*\)|[A-Za-z_*]+)")


def diagnosis_value_sets(kind: str, dashboard: dict[str, Any]) -> list[set[str]]:
    """Each set of rag.diagnosis values a query filters on (wildcards and empty omitted)."""
    found: list[str] = []
    if kind == "grafana":
        for _, language, query in grafana_queries(dashboard):
            pattern = TRACEQL_DIAGNOSIS if language == "traceql" else PROMQL_DIAGNOSIS
            found += pattern.findall(query)
        sets = [set(value.split("|")) for value in found if value]
    elif kind == "datadog":
        for _, query in datadog_queries(dashboard):
            found += DATADOG_DIAGNOSIS.findall(query["search"]["query"])
        sets = [set(value.strip("()").split(" OR ")) for value in found if value != "*"]
    else:
        sets = [
            values for _, spec in honeycomb_queries(dashboard) for values in spec_diagnoses(spec)
        ]
    return sets


def spec_diagnoses(spec: dict[str, Any]) -> list[set[str]]:
    """The rag.diagnosis value sets a Honeycomb query specification filters on."""
    sets = []
    for item in spec.get("filters", []):
        if item["column"] == "rag.diagnosis" and "value" in item:
            value = item["value"]
            sets.append(set(value) if isinstance(value, list) else {value})
    return sets


# -- the four questions -----------------------------------------------------------------------


def covered_questions(kind: str, dashboard: dict[str, Any]) -> set[str]:
    covered: set[str] = set()
    if kind == "grafana":
        for _, _, query in grafana_queries(dashboard):
            if re.search(r"quantile_over_time\(span\.rag\.utilisation_ratio, \.5, \.1\)", query):
                covered.add("utilisation")
            if "by (span.rag.diagnosis)" in query or "by (rag_diagnosis)" in query:
                covered.add("diagnosis counts")
            if "by (span.rag.chunk_set_hash)" in query and all(v in query for v in FAILING):
                covered.add("failing chunk sets")
            if '"ungrounded_answer"' in query:
                covered.add("ungrounded")
    elif kind == "datadog":
        for _, query in datadog_queries(dashboard):
            search, compute = query["search"]["query"], query["compute"]
            groups = {g["facet"] for g in query.get("group_by", [])}
            if compute.get("metric") == "@rag.utilisation_ratio":
                covered.add("utilisation")
            if "@rag.diagnosis" in groups:
                covered.add("diagnosis counts")
            hashes = {"@rag.chunk_set_hash", "@rag.ancestor_chunk_set_hashes"}
            if groups & hashes and all(v in search for v in FAILING):
                covered.add("failing chunk sets")
            if "@rag.diagnosis:ungrounded_answer" in search:
                covered.add("ungrounded")
    else:
        for _, spec in honeycomb_queries(dashboard):
            ops = {(c["op"], c.get("column")) for c in spec.get("calculations", [])}
            if {("P50", "rag.utilisation_ratio"), ("P10", "rag.utilisation_ratio")} <= ops:
                covered.add("utilisation")
            if "rag.diagnosis" in spec.get("breakdowns", []):
                covered.add("diagnosis counts")
            values = spec_diagnoses(spec)
            hashes = {"rag.chunk_set_hash", "rag.ancestor_chunk_set_hashes"}
            if hashes & set(spec.get("breakdowns", [])) and FAILING in values:
                covered.add("failing chunk sets")
            if {"ungrounded_answer"} in values:
                covered.add("ungrounded")
    return covered


QUESTIONS = {"utilisation", "diagnosis counts", "failing chunk sets", "ungrounded"}


def double_counting_queries(kind: str, dashboard: dict[str, Any]) -> list[str]:
    """Queries counting rag.diagnosis without choosing steps or roots (the root mirrors the
    final answer's diagnosis, so such a query counts each answer twice)."""
    choosers = ("rag.step_id", "rag_transformation_type", "nestedSetParent", "trace.parent_id")
    offenders: list[str] = []
    if kind == "grafana":
        for title, _, query in grafana_queries(dashboard):
            if "diagnosis" in query and not any(c in query for c in choosers):
                offenders.append(title)
    elif kind == "datadog":
        for title, query in datadog_queries(dashboard):
            search = query["search"]["query"]
            if "@rag.diagnosis" in search and "@rag.step_id" not in search:
                offenders.append(title)
    else:
        for title, spec in honeycomb_queries(dashboard):
            columns = {f["column"] for f in spec.get("filters", [])}
            if "rag.diagnosis" in columns and not columns & {"rag.step_id", "trace.parent_id"}:
                offenders.append(title)
    return offenders


def format_problems(kind: str, dashboard: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if kind == "grafana":
        inputs = {i["name"] for i in dashboard.get("__inputs", [])}
        ids = [panel["id"] for panel in dashboard["panels"]]
        if len(ids) != len(set(ids)):
            problems.append("duplicate panel ids")
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                uid = target["datasource"]["uid"]
                if uid.removeprefix("${").removesuffix("}") not in inputs:
                    problems.append(f"{panel['title']}: data source {uid} not in __inputs")
            if {"x", "y", "w", "h"} - set(panel.get("gridPos", {})):
                problems.append(f"{panel['title']}: no gridPos")
        for title, language, query in grafana_queries(dashboard):
            if language == "traceql" and query.count("{") != query.count("}"):
                problems.append(f"{title}: unbalanced braces")
    elif kind == "datadog":
        for widget in dashboard["widgets"]:
            definition = widget["definition"]
            for request in definition.get("requests", []):
                names = {q["name"] for q in request["queries"]}
                for formula in request["formulas"]:
                    if set(re.findall(r"[a-z_]+", formula["formula"])) - names:
                        problems.append(f"{definition['title']}: formula names unknown query")
            for request in definition.get("requests", []):
                for query in request["queries"]:
                    if query["data_source"] != "spans":
                        problems.append(f"{definition['title']}: not a spans query")
                    if query["compute"]["aggregation"] not in DATADOG_AGGREGATIONS:
                        problems.append(f"{definition['title']}: unknown aggregation")
    else:
        keys = [q["key"] for q in dashboard["queries"]]
        panel_keys = [
            p["query_panel"]["query_key"]
            for p in dashboard["board"]["panels"]
            if p["type"] == "query"
        ]
        if sorted(keys) != sorted(panel_keys) or len(set(keys)) != len(keys):
            problems.append("board panels and queries differ")
        if dashboard["board"].get("type") != "flexible":
            problems.append("board is not a flexible board")
        for title, spec in honeycomb_queries(dashboard):
            for calculation in spec.get("calculations", []):
                if calculation["op"] not in HONEYCOMB_CALCULATIONS:
                    problems.append(f"{title}: unknown calculation {calculation['op']}")
            for item in spec.get("filters", []):
                if item["op"] not in HONEYCOMB_FILTER_OPS:
                    problems.append(f"{title}: unknown filter op {item['op']}")
    return problems


# -- tests on the shipped files ---------------------------------------------------------------


def test_dashboard_files_present_and_parse():
    assert sorted(p.name for p in DASHBOARDS.glob("*.json")) == sorted(FILES.values())
    for kind in FILES:
        assert load(kind)


def test_official_refs_known():
    assert {"gen_ai.data_source.id", "gen_ai.operation.name"} <= official_refs()


@pytest.mark.parametrize("kind", FILES)
def test_dashboard_attributes_exist(kind):
    dashboard = load(kind)
    assert "rag.utilisation_ratio" in attribute_refs(kind, dashboard)
    assert unknown_refs(kind, dashboard) == set()


@pytest.mark.parametrize("kind", FILES)
def test_dashboard_diagnosis_values(kind):
    sets = diagnosis_value_sets(kind, load(kind))
    assert sets
    for values in sets:
        assert values <= DIAGNOSES
        assert values in ({"ungrounded_answer"}, FAILING), values


@pytest.mark.parametrize("kind", FILES)
def test_dashboard_answers_the_four_questions(kind):
    assert covered_questions(kind, load(kind)) == QUESTIONS


@pytest.mark.parametrize("kind", FILES)
def test_dashboard_counts_each_answer_once(kind):
    assert double_counting_queries(kind, load(kind)) == []


@pytest.mark.parametrize("kind", FILES)
def test_dashboard_format(kind):
    assert format_problems(kind, load(kind)) == []


def test_docs_name_only_real_rag_attributes():
    pages = [ROOT / "docs" / "diagnosis.md", *sorted((ROOT / "docs" / "backends").glob("*.md"))]
    names = set()
    for page in pages:
        names |= set(re.findall(r"\brag\.[a-z0-9_]*[a-z0-9]", page.read_text(encoding="utf-8")))
    assert "rag.diagnosis" in names
    assert names - set(ALL_RAG_ATTRIBUTES) == set()


def test_diagnosis_page_covers_every_category():
    text = (ROOT / "docs" / "diagnosis.md").read_text(encoding="utf-8")
    for value in DIAGNOSES:
        assert f"### `{value}`" in text, value


# -- each check catches what it is meant to catch ---------------------------------------------


def _grafana_first_query(dashboard):
    return dashboard["panels"][0]["targets"][0]


def _datadog_query(dashboard, title_part):
    return next(q for t, q in datadog_queries(dashboard) if title_part in t)


def _honeycomb_spec(dashboard, key):
    return next(q["query"] for q in dashboard["queries"] if q["key"] == key)


def test_unknown_attribute_is_caught():
    grafana = load("grafana")
    _grafana_first_query(grafana)["query"] += " && { span.rag.utilization_ratio > 0 }"
    assert unknown_refs("grafana", grafana) == {"rag.utilization_ratio"}

    datadog = load("datadog")
    _datadog_query(datadog, "Diagnosed steps")["group_by"][0]["facet"] = "@rag.diagnostic"
    assert unknown_refs("datadog", datadog) == {"rag.diagnostic"}

    honeycomb = load("honeycomb")
    _honeycomb_spec(honeycomb, "diagnosis_counts")["breakdowns"] = ["gen_ai.datasource.id"]
    assert unknown_refs("honeycomb", honeycomb) == {"gen_ai.datasource.id"}


def test_wrong_diagnosis_value_is_caught():
    grafana = load("grafana")
    target = grafana["panels"][-1]["targets"][0]
    target["query"] = target["query"].replace("ungrounded_answer", "ungrounded_answr")
    assert {"ungrounded_answr"} in diagnosis_value_sets("grafana", grafana)
    assert not all(values <= DIAGNOSES for values in diagnosis_value_sets("grafana", grafana))

    honeycomb = load("honeycomb")
    _honeycomb_spec(honeycomb, "failing_chunk_sets")["filters"][0]["value"].remove("navigation")
    assert FAILING not in diagnosis_value_sets("honeycomb", honeycomb)
    assert "failing chunk sets" not in covered_questions("honeycomb", honeycomb)


def test_missing_question_and_double_counting_are_caught():
    datadog = load("datadog")
    datadog["widgets"] = [
        w
        for w in datadog["widgets"]
        if "ungrounded" not in w["definition"].get("title", "").lower()
    ]
    assert covered_questions("datadog", datadog) == QUESTIONS - {"ungrounded"}

    honeycomb = copy.deepcopy(load("honeycomb"))
    spec = _honeycomb_spec(honeycomb, "diagnosis_counts")
    spec["filters"] = [f for f in spec["filters"] if f["column"] != "rag.step_id"]
    assert double_counting_queries("honeycomb", honeycomb) == ["Diagnosed steps by rag.diagnosis"]


def test_format_problems_are_caught():
    grafana = load("grafana")
    grafana["panels"][1]["id"] = grafana["panels"][0]["id"]
    assert "duplicate panel ids" in format_problems("grafana", grafana)

    datadog = load("datadog")
    _datadog_query(datadog, "Utilisation median")["compute"]["aggregation"] = "pc10"
    assert format_problems("datadog", datadog)

    honeycomb = load("honeycomb")
    honeycomb["board"]["panels"].pop()
    assert "board panels and queries differ" in format_problems("honeycomb", honeycomb)
