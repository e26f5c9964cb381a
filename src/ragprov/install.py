"""Install the provenance processor on a tracer provider that is already set up.

For apps that build their OpenTelemetry SDK themselves::

    provider = TracerProvider(resource=...)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    ragprov.configure()          # after the exporters are added

An SDK span cannot be changed once it has ended, so signals reach a backend only when the
:class:`~ragprov.processor.ProvenanceSpanProcessor` *owns* the export processors. ``configure()``
therefore moves every span processor already registered on the provider under one provenance
processor: the provider's list ``(p1, p2)`` becomes ``(ProvenanceSpanProcessor(p1 + p2),)``, and
``p1``/``p2`` receive the enriched copy of each span (``on_start`` is passed through unchanged).

Rules (docs/zero-code.md has the user-facing version):

* **Order.** Call it after adding the exporters. A processor added *after* ``configure()`` sits
  beside the provenance processor and sees spans without signals; calling ``configure()`` again
  moves such processors under the installed one. Composing the processor by hand,
  ``ProvenanceSpanProcessor(BatchSpanProcessor(exporter))``, needs no ``configure()`` at all.
* **Idempotent.** At most one provenance processor per provider: when one is registered already
  (installed by ``configure()``, by the zero-code configurator or composed by hand), it is
  returned and no second one is created. The first call's ``settings`` stay in force.
* **Never raises into the app.** A provider that is not an SDK ``TracerProvider`` (the default
  proxy or no-op provider, or a vendor's own class), an SDK provider with no span processor yet,
  or any internal failure is logged as a warning and ``None`` is returned; the app keeps
  exporting plain spans.
* **Switches.** ``OTEL_SDK_DISABLED=true`` (the SDK provider then creates no spans) and the name
  ``ragprov`` in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` make ``configure()`` a no-op that
  returns ``None``. ``ragprov`` is the operator's kill switch for all of ragprov's span
  processing, also for an explicit call in code; the instrumentors have their own names
  (``ragprov_chromadb`` …) and are skipped by ``opentelemetry-instrument`` itself. The wildcard
  ``*`` skips instrumentors only, as in OpenTelemetry.

Internals (checked against opentelemetry-sdk 1.45): ``TracerProvider`` keeps its processors in
``provider._active_span_processor`` (a ``SynchronousMultiSpanProcessor`` or
``ConcurrentMultiSpanProcessor``) whose ``_span_processors`` tuple is read by every tracer on each
span start and end, and replaced under the multi-processor's ``_lock`` by ``add_span_processor``.
``configure()`` swaps that tuple under the same lock, so tracers created earlier see the change.
``provider._disabled`` reflects ``OTEL_SDK_DISABLED`` at the provider's construction.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.instrumentation.environment_variables import (
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS,
)
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)

if TYPE_CHECKING:
    from ragprov.config import Settings
    from ragprov.processor import ProvenanceSpanProcessor

__all__ = ["DISABLE_NAME", "ExportProcessors", "configure", "disabled_by_env"]

_logger = logging.getLogger(__name__)

DISABLE_NAME = "ragprov"
"""The name in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` that turns ragprov's processor off."""

_configure_lock = threading.Lock()


class ExportProcessors(SynchronousMultiSpanProcessor):
    """The processors ``configure()`` moved under a provenance processor (its ``downstream``).

    A distinct class so a later ``configure()`` knows it may add processors to it; a downstream
    composed by the user is never modified.
    """


def disabled_by_env(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` lists ``ragprov``.

    Parsed as ``opentelemetry-instrument`` parses it: comma-separated, surrounding spaces ignored.
    """
    env = os.environ if environ is None else environ
    names = env.get(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, "")
    return DISABLE_NAME in (name.strip() for name in names.split(","))


def configure(
    tracer_provider: trace.TracerProvider | None = None,
    *,
    settings: Settings | None = None,
) -> ProvenanceSpanProcessor | None:
    """Put the provider's span processors under one provenance processor and return it.

    ``tracer_provider`` defaults to the global one (``trace.get_tracer_provider()``);
    ``settings`` default to :func:`ragprov.config.load_settings` (environment variables).
    Returns the installed (or already present) processor, or ``None`` when nothing was
    installed — see the module docstring for when. Never raises.
    """
    return install(tracer_provider, settings=settings, explicit=True)


def install(
    tracer_provider: trace.TracerProvider | None = None,
    *,
    settings: Settings | None = None,
    explicit: bool = False,
) -> ProvenanceSpanProcessor | None:
    """:func:`configure` for ragprov's own callers.

    ``explicit=False`` (the zero-code configurator and the post-instrument hook) logs the
    expected "nothing to do" cases at debug level instead of as warnings.
    """
    try:
        with _configure_lock:
            return _install(tracer_provider, settings, explicit)
    except Exception:
        _logger.warning(
            "ragprov: could not install the provenance span processor; spans are exported "
            "without provenance signals",
            exc_info=True,
        )
        return None


def _install(
    tracer_provider: trace.TracerProvider | None,
    settings: Settings | None,
    explicit: bool,
) -> ProvenanceSpanProcessor | None:
    # Imported here so that a broken optional dependency of the processor (numpy …) is caught
    # by install()'s guard instead of failing the import of ragprov.distro at start-up.
    from ragprov.processor import ProvenanceSpanProcessor

    notice = _logger.warning if explicit else _logger.debug
    if disabled_by_env():
        _logger.info(
            "ragprov: span processing disabled by %s", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS
        )
        return None

    provider = trace.get_tracer_provider() if tracer_provider is None else tracer_provider
    if not isinstance(provider, TracerProvider):
        notice(
            "ragprov: %s is not an OpenTelemetry SDK TracerProvider, so no provenance signals "
            "are added; call ragprov's configure() after trace.set_tracer_provider(...)",
            type(provider).__name__,
        )
        return None
    if getattr(provider, "_disabled", False):
        _logger.debug("ragprov: the SDK is disabled (OTEL_SDK_DISABLED); nothing to configure")
        return None

    active = getattr(provider, "_active_span_processor", None)
    if not isinstance(active, (SynchronousMultiSpanProcessor, ConcurrentMultiSpanProcessor)):
        notice(
            "ragprov: unsupported span processor layout (%s); no provenance signals are added",
            type(active).__name__,
        )
        return None

    with active._lock:
        processors = active._span_processors
        existing = [p for p in processors if isinstance(p, ProvenanceSpanProcessor)]
        if existing:
            return _fold_later_processors(active, existing[0])
        if not processors:
            notice(
                "ragprov: the tracer provider has no span processor yet; add the exporters, "
                "then call configure()"
            )
            return None
        downstream = ExportProcessors()  # type: ignore[no-untyped-call]  # SDK __init__
        for processor in processors:
            downstream.add_span_processor(processor)
        provenance = ProvenanceSpanProcessor(downstream, settings=settings)
        active._span_processors = (provenance,)
    _logger.debug("ragprov: provenance processor wraps %d span processor(s)", len(processors))
    return provenance


def _fold_later_processors(
    active: SynchronousMultiSpanProcessor | ConcurrentMultiSpanProcessor,
    provenance: ProvenanceSpanProcessor,
) -> ProvenanceSpanProcessor:
    """Move processors registered after ``provenance`` under it, when its downstream is ours.

    Called with ``active._lock`` held. A hand-composed downstream is left alone: processors
    beside it then keep seeing spans without signals.
    """
    from ragprov.processor import ProvenanceSpanProcessor

    processors = active._span_processors
    position = processors.index(provenance)
    later: tuple[SpanProcessor, ...] = tuple(
        p for p in processors[position + 1 :] if not isinstance(p, ProvenanceSpanProcessor)
    )
    if later and isinstance(provenance.downstream, ExportProcessors):
        for processor in later:
            provenance.downstream.add_span_processor(processor)
        active._span_processors = tuple(p for p in processors if p not in later)
        _logger.debug("ragprov: moved %d later span processor(s) under it", len(later))
    elif later:
        _logger.info(
            "ragprov: %d span processor(s) registered beside a hand-composed "
            "ProvenanceSpanProcessor receive spans without provenance signals",
            len(later),
        )
    return provenance
