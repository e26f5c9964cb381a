"""Settings from environment variables: defaults, parsing, clear errors, docs in step."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from ragprov.config import (
    ConfigError,
    Settings,
    capture_content_enabled,
    environment_variables,
    load_settings,
)
from ragprov.signals import defaults

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_without_environment() -> None:
    assert load_settings({}) == Settings(
        capture_content=False,
        utilisation_threshold=defaults.UTILISATION_THRESHOLD,
        diversity_gate=defaults.DIVERSITY_GATE,
        redundancy_threshold=defaults.REDUNDANCY_THRESHOLD,
        lexical_redundancy_threshold=defaults.LEXICAL_REDUNDANCY_THRESHOLD,
        quality_threshold=defaults.QUALITY_THRESHOLD,
        utilisation_diagnosis_threshold=defaults.UTILISATION_DIAGNOSIS_THRESHOLD,
        uncertainty_patterns=defaults.DEFAULT_UNCERTAINTY_PATTERNS,
        extra_uncertainty_patterns=(),
    )


def test_default_values_are_the_design_defaults() -> None:
    settings = Settings()
    assert settings.utilisation_threshold == 0.30
    assert settings.diversity_gate == 0.30
    assert settings.redundancy_threshold == 0.85
    assert settings.quality_threshold == 0.6
    assert settings.utilisation_diagnosis_threshold == 0.5


@pytest.mark.parametrize(
    ("variable", "field", "raw", "expected"),
    [
        ("RAGPROV_UTILISATION_THRESHOLD", "utilisation_threshold", "0.4", 0.4),
        ("RAGPROV_DIVERSITY_GATE", "diversity_gate", " 0.25 ", 0.25),
        ("RAGPROV_REDUNDANCY_THRESHOLD", "redundancy_threshold", "1", 1.0),
        ("RAGPROV_LEXICAL_REDUNDANCY_THRESHOLD", "lexical_redundancy_threshold", "0.6", 0.6),
        ("RAGPROV_QUALITY_THRESHOLD", "quality_threshold", "0", 0.0),
        (
            "RAGPROV_UTILISATION_DIAGNOSIS_THRESHOLD",
            "utilisation_diagnosis_threshold",
            "0.75",
            0.75,
        ),
        ("RAGPROV_UNCERTAINTY_PATTERNS", "uncertainty_patterns", '["no data"]', ("no data",)),
        (
            "RAGPROV_EXTRA_UNCERTAINTY_PATTERNS",
            "extra_uncertainty_patterns",
            '["not in the docs", "no data"]',
            ("not in the docs", "no data"),
        ),
    ],
)
def test_each_variable_sets_its_field(
    variable: str, field: str, raw: str, expected: object
) -> None:
    assert getattr(load_settings({variable: raw}, strict=True), field) == expected


def test_extra_patterns_extend_the_base_list() -> None:
    settings = load_settings({"RAGPROV_EXTRA_UNCERTAINTY_PATTERNS": '["no data"]'})
    assert settings.all_uncertainty_patterns == (*defaults.DEFAULT_UNCERTAINTY_PATTERNS, "no data")


def test_empty_variable_counts_as_unset() -> None:
    assert load_settings({"RAGPROV_DIVERSITY_GATE": "  "}, strict=True) == Settings()


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("RAGPROV_DIVERSITY_GATE", "high", "RAGPROV_DIVERSITY_GATE='high' is not a number"),
        ("RAGPROV_DIVERSITY_GATE", "1.5", "between 0 and 1 (default: 0.3)"),
        ("RAGPROV_DIVERSITY_GATE", "nan", "RAGPROV_DIVERSITY_GATE='nan' is not a number"),
        ("RAGPROV_UNCERTAINTY_PATTERNS", "no data", "is not a JSON array"),
        ("RAGPROV_UNCERTAINTY_PATTERNS", '{"a": 1}', "is not a JSON array"),
        ("RAGPROV_UNCERTAINTY_PATTERNS", '["ok", 3]', "is not a JSON array"),
        ("RAGPROV_UNCERTAINTY_PATTERNS", '[" "]', "non-empty phrases"),
        ("RAGPROV_CAPTURE_CONTENT", "sometimes", "RAGPROV_CAPTURE_CONTENT='sometimes' is not"),
        (
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
            "verbose",
            "is not true/false or one of SPAN_ONLY",
        ),
    ],
)
def test_strict_mode_names_the_bad_variable(variable: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings({variable: raw}, strict=True)


def test_strict_mode_reports_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(
            {"RAGPROV_DIVERSITY_GATE": "x", "RAGPROV_QUALITY_THRESHOLD": "y"}, strict=True
        )
    assert "RAGPROV_DIVERSITY_GATE" in str(raised.value)
    assert "RAGPROV_QUALITY_THRESHOLD" in str(raised.value)


def test_lenient_mode_warns_and_keeps_the_default(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ragprov.config"):
        settings = load_settings(
            {"RAGPROV_DIVERSITY_GATE": "x", "RAGPROV_QUALITY_THRESHOLD": "0.7"}
        )
    assert settings.diversity_gate == defaults.DIVERSITY_GATE
    assert settings.quality_threshold == 0.7
    assert "RAGPROV_DIVERSITY_GATE='x' is not a number between 0 and 1" in caplog.text


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"RAGPROV_CAPTURE_CONTENT": "true"}, True),
        ({"RAGPROV_CAPTURE_CONTENT": "0"}, False),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "True"}, True),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}, True),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_and_event"}, True),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "NO_CONTENT"}, False),
        (
            {
                "RAGPROV_CAPTURE_CONTENT": "false",
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
            },
            False,
        ),
    ],
)
def test_content_capture_switch(environ: dict[str, str], expected: bool) -> None:
    assert load_settings(environ, strict=True).capture_content is expected


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGPROV_QUALITY_THRESHOLD", "0.42")
    assert load_settings().quality_threshold == 0.42


def test_as_env_round_trips() -> None:
    settings = load_settings(
        {
            "RAGPROV_CAPTURE_CONTENT": "true",
            "RAGPROV_DIVERSITY_GATE": "0.2",
            "RAGPROV_EXTRA_UNCERTAINTY_PATTERNS": '["no data"]',
        }
    )
    assert load_settings(settings.as_env(), strict=True) == settings


def test_every_variable_is_documented() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`((?:RAGPROV|OTEL)_[A-Z_]+)`", docs))
    assert set(environment_variables()) <= documented


def test_capture_switch_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAGPROV_CAPTURE_CONTENT", raising=False)
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    assert capture_content_enabled() is False
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    assert capture_content_enabled() is True
    monkeypatch.setenv("RAGPROV_CAPTURE_CONTENT", "false")  # ragprov's variable wins
    assert capture_content_enabled() is False


def test_capture_switch_keeps_content_off_for_an_invalid_value(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RAGPROV_CAPTURE_CONTENT", "perhaps")
    with caplog.at_level(logging.WARNING, logger="ragprov.config"):
        assert capture_content_enabled() is False
    assert "RAGPROV_CAPTURE_CONTENT='perhaps'" in caplog.text
