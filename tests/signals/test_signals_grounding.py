"""Grounding: acknowledged uncertainty, tool data, source/response ratio, grounding status."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ragprov.signals.grounding import (
    ACKNOWLEDGED_GAP,
    CONTEXT_IGNORED,
    GROUNDED,
    UNGROUNDED,
    grounding_status,
    source_to_response_ratio,
    tool_provided_data,
    uncertainty_acknowledged,
)
from ragprov.signals.tokens import fingerprint


@pytest.mark.parametrize(
    "text",
    [
        "I couldn't find anything about Acme's 2025 revenue.",
        "I couldn’t find anything about it.",  # curly apostrophe
        "I COULD NOT FIND the figure.",
        "There is no relevant information in the documents.",
        "There is no  relevant\ninformation here.",  # any whitespace between words
        "I don't have data on that.",
        "Based on general knowledge, lidar is common.",
        "Revenue is estimated at $15M.",
        "I'm not sure the figure is current.",
        "The documents do not contain enough information; not enough information to say.",
        "I was unable to find it.",
    ],
)
def test_acknowledging_phrases_are_detected(text: str) -> None:
    assert uncertainty_acknowledged(text) is True


@pytest.mark.parametrize(
    "text",
    [
        "Analysts underestimated the backlog.",
        "Revenue was $12.4M in fiscal 2023.",
        "The couldn't-findable widget",  # 'find' glued to more word characters
        "We found the information you asked for.",
        "",
    ],
)
def test_confident_text_is_not_an_acknowledgement(text: str) -> None:
    assert uncertainty_acknowledged(text) is False


def test_uncertainty_patterns_are_configurable() -> None:
    assert uncertainty_acknowledged("Per my records, none.", patterns=["per my records"]) is True
    assert uncertainty_acknowledged("I couldn't find it.", patterns=["per my records"]) is False


def test_a_compiled_regex_can_replace_the_phrase_list() -> None:
    assert uncertainty_acknowledged("N/A - unknown", patterns=re.compile(r"\bunknown\b")) is True


def test_empty_pattern_list_never_fires() -> None:
    assert uncertainty_acknowledged("I couldn't find it.", patterns=[]) is False


@pytest.mark.parametrize(
    ("output", "provided"),
    [
        ("Revenue 2023: $12.4M", True),
        (b"rows: 3", True),
        (["row"], True),
        ({"results": [{"id": 1}]}, True),
        ('{"results": [{"id": 1}]}', True),
        ({"temperature": 21}, True),
        ("Page not found on the mirror, but the archive copy says revenue was $12.4M.", True),
        ("No results were excluded. " + "Revenue grew in every region. " * 10, True),
        ("", False),
        ("   ", False),
        (None, False),
        (b"", False),
        ([], False),
        ({}, False),
        ("[]", False),
        ("{}", False),
        ("null", False),
        ("None", False),
        ("No results found.", False),
        ("no results for 'acme revenue'", False),
        ("Nothing found", False),
        ("0 results", False),
        ({"results": []}, False),
        ({"documents": None, "data": []}, False),
        ('{"results": []}', False),
        ({"error": "timeout", "results": [1]}, False),
        ("Error: connection refused", False),
        ("Traceback (most recent call last):\n  File ...", False),
    ],
)
def test_tool_provided_data(output: Any, provided: bool) -> None:
    assert tool_provided_data(output) is provided


@pytest.mark.parametrize("error", [RuntimeError("boom"), True, "timeout"])
def test_tool_error_means_no_data(error: object) -> None:
    assert tool_provided_data("Revenue 2023: $12.4M", error=error) is False


@pytest.mark.parametrize("error", [None, False, ""])
def test_falsy_error_means_no_error(error: object) -> None:
    assert tool_provided_data("Revenue 2023: $12.4M", error=error) is True


def test_tool_output_whose_str_raises_is_not_data() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert tool_provided_data(Hostile()) is False


def test_source_to_response_ratio_is_distinct_tokens_over_union_of_sources() -> None:
    # response: alpha bravo (2); sources: alpha bravo charlie delta ∪ charlie delta echo foxtrot (6)
    ratio = source_to_response_ratio(
        fingerprint("alpha bravo"),
        [fingerprint("alpha bravo charlie delta"), fingerprint("charlie delta echo foxtrot")],
    )
    assert ratio == pytest.approx(2 / 6)


def test_source_to_response_ratio_can_exceed_one() -> None:
    ratio = source_to_response_ratio(fingerprint("alpha bravo charlie"), [fingerprint("alpha")])
    assert ratio == 3.0


@pytest.mark.parametrize(
    ("response", "sources"),
    [(None, ["alpha"]), ("alpha", []), ("alpha", ["", "---"])],
)
def test_source_to_response_ratio_is_undefined_without_sources(
    response: str | None, sources: list[str]
) -> None:
    response_fp = fingerprint(response) if response is not None else None
    assert source_to_response_ratio(response_fp, [fingerprint(s) for s in sources]) is None


@pytest.mark.parametrize(
    ("usable", "used", "acknowledged", "empty", "status"),
    [
        (True, True, False, False, GROUNDED),
        (True, True, True, False, GROUNDED),
        (True, False, False, False, CONTEXT_IGNORED),
        (True, False, True, False, ACKNOWLEDGED_GAP),
        (True, None, False, False, None),
        (False, None, True, False, ACKNOWLEDGED_GAP),
        (False, None, False, False, UNGROUNDED),
        (False, None, False, True, None),
        (True, None, False, True, None),
    ],
)
def test_grounding_status_rules(
    usable: bool, used: bool | None, acknowledged: bool, empty: bool, status: str | None
) -> None:
    assert (
        grounding_status(
            usable_data=usable,
            evidence_used=used,
            uncertainty_acknowledged=acknowledged,
            output_empty=empty,
        )
        == status
    )
