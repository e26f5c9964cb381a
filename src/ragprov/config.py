"""Settings from environment variables.

Every threshold of the signals engine and every switch is readable from a ``RAGPROV_*``
variable; docs/configuration.md lists them with their defaults (a test keeps the two in step).
The defaults themselves live in :mod:`ragprov.signals.defaults`, next to the formulas.

Instrumentation must never break the host app, so :func:`load_settings` by default logs a clear
warning for an unparsable value and keeps the default. ``strict=True`` (used by
``ragprov config --check`` and by tests) raises :class:`ConfigError` listing every problem.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from ragprov import lineage, sidechannel, trace_state
from ragprov.signals import Thresholds, defaults

_logger = logging.getLogger(__name__)

T = TypeVar("T")

CAPTURE_CONTENT_ENV = "RAGPROV_CAPTURE_CONTENT"
OTEL_CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
# The official GenAI instrumentations also accept these modes for the OTel variable; any mode that
# records content on spans or events counts as opted in.
_OTEL_CONTENT_MODES = {
    "span_only": True,
    "event_only": True,
    "span_and_event": True,
    "no_content": False,
}


#: Ended spans waiting for the processor's worker; beyond it spans are exported unenriched.
DEFAULT_MAX_QUEUE_SIZE = 65_536


class ConfigError(ValueError):
    """One or more environment variables could not be parsed."""


@dataclass(frozen=True, slots=True)
class _Option(Generic[T]):
    """One setting: its variable, how to parse it, and what it means (for errors and docs)."""

    env: str
    parse: Callable[[str], T]
    expects: str


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError


def _parse_unit_interval(raw: str) -> float:
    value = float(raw.strip())
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError
    return value


def _parse_positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value < 1:
        raise ValueError
    return value


def _parse_positive_float(raw: str) -> float:
    value = float(raw.strip())
    if not math.isfinite(value) or value <= 0:
        raise ValueError
    return value


def _parse_phrases(raw: str) -> tuple[str, ...]:
    """A JSON array of phrases (JSON, because a phrase may contain any separator)."""
    phrases = json.loads(raw)
    if not isinstance(phrases, list) or not all(
        isinstance(phrase, str) and phrase.strip() for phrase in phrases
    ):
        raise ValueError
    return tuple(phrases)


_UNIT = "a number between 0 and 1"
_COUNT = "a whole number of at least 1"
_SECONDS = "a number of seconds above 0"
_PHRASES = 'a JSON array of non-empty phrases, e.g. ["no data was found"]'

_OPTIONS: dict[str, _Option[Any]] = {
    "utilisation_threshold": _Option("RAGPROV_UTILISATION_THRESHOLD", _parse_unit_interval, _UNIT),
    "diversity_gate": _Option("RAGPROV_DIVERSITY_GATE", _parse_unit_interval, _UNIT),
    "redundancy_threshold": _Option("RAGPROV_REDUNDANCY_THRESHOLD", _parse_unit_interval, _UNIT),
    "lexical_redundancy_threshold": _Option(
        "RAGPROV_LEXICAL_REDUNDANCY_THRESHOLD", _parse_unit_interval, _UNIT
    ),
    "quality_threshold": _Option("RAGPROV_QUALITY_THRESHOLD", _parse_unit_interval, _UNIT),
    "utilisation_diagnosis_threshold": _Option(
        "RAGPROV_UTILISATION_DIAGNOSIS_THRESHOLD", _parse_unit_interval, _UNIT
    ),
    "content_match_threshold": _Option(
        "RAGPROV_CONTENT_MATCH_THRESHOLD", _parse_unit_interval, _UNIT
    ),
    "max_traces": _Option("RAGPROV_MAX_TRACES", _parse_positive_int, _COUNT),
    "max_state_bytes": _Option("RAGPROV_MAX_STATE_BYTES", _parse_positive_int, _COUNT),
    "trace_ttl_seconds": _Option("RAGPROV_TRACE_TTL_SECONDS", _parse_positive_float, _SECONDS),
    "max_queue_size": _Option("RAGPROV_MAX_QUEUE_SIZE", _parse_positive_int, _COUNT),
    "max_pending_spans": _Option("RAGPROV_MAX_PENDING_SPANS", _parse_positive_int, _COUNT),
    "max_pending_chars": _Option("RAGPROV_MAX_PENDING_CHARS", _parse_positive_int, _COUNT),
    "uncertainty_patterns": _Option("RAGPROV_UNCERTAINTY_PATTERNS", _parse_phrases, _PHRASES),
    "extra_uncertainty_patterns": _Option(
        "RAGPROV_EXTRA_UNCERTAINTY_PATTERNS", _parse_phrases, _PHRASES
    ),
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Effective settings. Build with :func:`load_settings`; all fields have safe defaults."""

    capture_content: bool = False
    utilisation_threshold: float = defaults.UTILISATION_THRESHOLD
    diversity_gate: float = defaults.DIVERSITY_GATE
    redundancy_threshold: float = defaults.REDUNDANCY_THRESHOLD
    lexical_redundancy_threshold: float = defaults.LEXICAL_REDUNDANCY_THRESHOLD
    quality_threshold: float = defaults.QUALITY_THRESHOLD
    utilisation_diagnosis_threshold: float = defaults.UTILISATION_DIAGNOSIS_THRESHOLD
    content_match_threshold: float = lineage.CONTENT_MATCH_THRESHOLD
    max_traces: int = trace_state.DEFAULT_MAX_TRACES
    max_state_bytes: int = trace_state.DEFAULT_MAX_BYTES
    trace_ttl_seconds: float = trace_state.DEFAULT_TTL_SECONDS
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
    max_pending_spans: int = sidechannel.DEFAULT_MAX_PENDING_SPANS
    max_pending_chars: int = sidechannel.DEFAULT_MAX_PENDING_CHARS
    uncertainty_patterns: tuple[str, ...] = defaults.DEFAULT_UNCERTAINTY_PATTERNS
    extra_uncertainty_patterns: tuple[str, ...] = field(default=())

    @property
    def thresholds(self) -> Thresholds:
        """The signal thresholds in the form the signals engine takes."""
        return Thresholds(
            utilisation=self.utilisation_threshold,
            diversity_gate=self.diversity_gate,
            redundancy=self.redundancy_threshold,
            lexical_redundancy=self.lexical_redundancy_threshold,
            quality=self.quality_threshold,
            diagnosis_diversity=self.diversity_gate,
            diagnosis_utilisation=self.utilisation_diagnosis_threshold,
        )

    @property
    def all_uncertainty_patterns(self) -> tuple[str, ...]:
        """The patterns in force: the base list (default or replaced) plus the extra ones."""
        return self.uncertainty_patterns + self.extra_uncertainty_patterns

    def as_env(self) -> dict[str, str]:
        """Each setting as its variable would spell it (for ``ragprov config``)."""
        env = {CAPTURE_CONTENT_ENV: str(self.capture_content).lower()}
        for setting in fields(self):
            option = _OPTIONS.get(setting.name)
            if option is not None:
                value = getattr(self, setting.name)
                env[option.env] = (
                    json.dumps(list(value)) if isinstance(value, tuple) else str(value)
                )
        return env


def load_settings(environ: Mapping[str, str] | None = None, *, strict: bool = False) -> Settings:
    """Read :class:`Settings` from ``environ`` (default: ``os.environ``).

    Empty variables count as unset. With ``strict=False`` (the default, used inside the host
    app) each bad value is logged as a warning and its default kept.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []

    try:
        values["capture_content"] = _capture_content(env)
    except ConfigError as error:
        problems.append(str(error))

    for name, option in _OPTIONS.items():
        raw = env.get(option.env, "")
        if not raw.strip():
            continue
        try:
            values[name] = option.parse(raw)
        except ValueError:
            problems.append(
                f"{option.env}={raw!r} is not {option.expects} "
                f"(default: {Settings.__dataclass_fields__[name].default!r})"
            )

    if problems:
        if strict:
            raise ConfigError("; ".join(problems))
        for problem in problems:
            _logger.warning("ragprov: ignoring invalid setting: %s", problem)
    return Settings(**values)


def _capture_content(env: Mapping[str, str]) -> bool:
    """``RAGPROV_CAPTURE_CONTENT`` wins; else the OTel GenAI variable; else off."""
    raw = env.get(CAPTURE_CONTENT_ENV, "").strip()
    if raw:
        try:
            return _parse_bool(raw)
        except ValueError:
            raise ConfigError(
                f"{CAPTURE_CONTENT_ENV}={raw!r} is not a boolean (true/false; default: false)"
            ) from None
    raw = env.get(OTEL_CAPTURE_CONTENT_ENV, "").strip()
    if not raw:
        return False
    mode = _OTEL_CONTENT_MODES.get(raw.lower())
    if mode is not None:
        return mode
    try:
        return _parse_bool(raw)
    except ValueError:
        raise ConfigError(
            f"{OTEL_CAPTURE_CONTENT_ENV}={raw!r} is not true/false or one of "
            f"{', '.join(m.upper() for m in _OTEL_CONTENT_MODES)} (default: false)"
        ) from None


class _CaptureSwitch:
    """``load_settings().capture_content``, re-read only when one of its two variables changed.

    Instrumentors ask on every call, so it reads the environment's underlying mapping with
    pre-encoded keys where it can (``os.environ.get`` of a missing key raises and catches
    KeyError, ~0.8 µs), and falls back to ``os.environ.get`` elsewhere.
    """

    _NAMES = (CAPTURE_CONTENT_ENV, OTEL_CAPTURE_CONTENT_ENV)

    def __init__(self) -> None:
        self._seen: tuple[object, object] | None = None
        self._value = False
        data = getattr(os.environ, "_data", None)
        encode = getattr(os.environ, "encodekey", None)
        self._data: dict[Any, Any] | None = None
        self._keys: tuple[Any, ...] = self._NAMES
        if isinstance(data, dict) and callable(encode):
            self._data, self._keys = data, tuple(encode(name) for name in self._NAMES)

    def __call__(self) -> bool:
        data = self._data
        if data is not None:
            seen = (data.get(self._keys[0]), data.get(self._keys[1]))
        else:
            seen = (os.environ.get(self._NAMES[0]), os.environ.get(self._NAMES[1]))
        if seen != self._seen:
            try:
                self._value = _capture_content(os.environ)
            except ConfigError as error:  # inside the host app: warn, keep content off
                _logger.warning("ragprov: ignoring invalid setting: %s", error)
                self._value = False
            self._seen = seen
        return self._value


#: Whether content capture is on now (cheap enough for every instrumented call).
capture_content_enabled = _CaptureSwitch()


def environment_variables() -> dict[str, str]:
    """Every variable ragprov reads, with what it expects (the docs table is checked against it)."""
    table = {
        CAPTURE_CONTENT_ENV: "a boolean",
        OTEL_CAPTURE_CONTENT_ENV: "a boolean or an OTel GenAI content mode",
    }
    table.update({option.env: option.expects for option in _OPTIONS.values()})
    return table
