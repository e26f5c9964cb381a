"""Zero-code setup: ``opentelemetry-instrument python app.py`` exports enriched spans.

What ``opentelemetry-instrument`` does at start-up (opentelemetry-instrumentation 0.66b,
``auto_instrumentation/_initialize`` and ``_load.py``), in this order:

1. loads **one distro**: the ``opentelemetry_distro`` entry point named by
   ``OTEL_PYTHON_DISTRO``, else the first one found, and calls its ``configure()``;
2. runs **one configurator**: the ``opentelemetry_configurator`` entry point named by
   ``OTEL_PYTHON_CONFIGURATOR``, else the first one found (the others are skipped with a
   warning). Discovery order follows the installed packages and cannot be controlled;
3. loads the instrumentors (``opentelemetry_instrumentor``, minus
   ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``), then calls every ``opentelemetry_post_instrument``
   entry point with no arguments.

ragprov registers one of each, with names unique to ragprov:

* ``ragprov_distro`` → :class:`RagprovDistro`: the same environment defaults as
  ``opentelemetry-distro`` (``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER`` and
  ``OTEL_LOGS_EXPORTER`` = ``otlp``, ``OTEL_EXPORTER_OTLP_PROTOCOL`` = ``grpc``), so the result
  does not depend on which of the two distros is picked, plus
  ``OTEL_PYTHON_CONFIGURATOR=ragprov_configurator`` as a default. Values the user set win.
* ``ragprov_configurator`` → :class:`RagprovConfigurator`: the SDK's own configuration from the
  ``OTEL_*`` variables (``_OTelSDKConfigurator._configure``, unchanged), then
  :func:`ragprov.install.install` on the resulting provider, which moves the exporters' span
  processors under one :class:`~ragprov.processor.ProvenanceSpanProcessor`.
* ``ragprov_processor`` (``opentelemetry_post_instrument``) → :func:`post_instrument`: the same
  :func:`~ragprov.install.install`, which is a no-op when a provenance processor is already
  registered.

**Coexistence rule.** The provenance processor is installed exactly once, whichever distro and
configurator ``opentelemetry-instrument`` picked:

* ragprov's configurator ran (ragprov's distro set it as default, or it was found first, or the
  user named it) → it installs the processor right after the SDK set up the exporters;
* another SDK-based configurator ran (``opentelemetry-distro``'s ``configurator``, a vendor's) →
  the post-instrument hook finds the SDK provider it built and wraps its processors;
* no SDK provider exists (a configurator that sets up something else, ``OTEL_SDK_DISABLED``,
  ``ragprov`` in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``) → nothing is installed and the app
  runs exactly as without ragprov.

Why not ``_configure(export_span_processor=...)``: that factory wraps each exporter on its own,
so with ``OTEL_TRACES_EXPORTER=console,otlp`` there would be two provenance processors competing
for the same in-process side-channel payloads, and it is ignored when ``OTEL_CONFIG_FILE`` is
used. Wrapping the finished provider covers both, and is the same code as the hook and as
``configure()``.

The distro unsets ``OTEL_PYTHON_CONFIGURATOR`` again in the post-instrument hook when it was the
one that set it, so child processes started by the app (possibly without ragprov installed) do
not inherit a configurator name they cannot load.

Nothing here raises into the app: a failure in ragprov's part is logged and the SDK's plain
behaviour (unenriched export) stays in place. Errors of the SDK's own configuration propagate as
they do with the SDK's configurator (``opentelemetry-instrument`` logs them).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry.environment_variables import (
    OTEL_LOGS_EXPORTER,
    OTEL_METRICS_EXPORTER,
    OTEL_TRACES_EXPORTER,
)
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.instrumentation.environment_variables import OTEL_PYTHON_CONFIGURATOR
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.environment_variables import OTEL_EXPORTER_OTLP_PROTOCOL

from ragprov.install import install

__all__ = [
    "CONFIGURATOR_NAME",
    "DISTRO_NAME",
    "RagprovConfigurator",
    "RagprovDistro",
    "post_instrument",
]

_logger = logging.getLogger(__name__)

DISTRO_NAME = "ragprov_distro"
CONFIGURATOR_NAME = "ragprov_configurator"

# The defaults opentelemetry-distro sets (opentelemetry/distro/__init__.py), kept identical so
# that picking either distro gives the same exporters.
ENVIRONMENT_DEFAULTS: dict[str, str] = {
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_METRICS_EXPORTER: "otlp",
    OTEL_LOGS_EXPORTER: "otlp",
    OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
}

_state: dict[str, bool] = {"set_configurator": False}


# opentelemetry/instrumentation/distro.py starts with a file-level ``# type: ignore``: mypy sees
# none of its names, hence the ignores on the import and here.
class RagprovDistro(BaseDistro):  # type: ignore[misc]
    """Environment defaults of opentelemetry-distro, and ragprov's configurator as default."""

    def _configure(self, **kwargs: Any) -> None:
        try:
            for name, value in ENVIRONMENT_DEFAULTS.items():
                os.environ.setdefault(name, value)
            if OTEL_PYTHON_CONFIGURATOR not in os.environ:
                os.environ[OTEL_PYTHON_CONFIGURATOR] = CONFIGURATOR_NAME
                _state["set_configurator"] = True
        except Exception:
            _logger.warning("ragprov: distro setup failed", exc_info=True)


class RagprovConfigurator(_OTelSDKConfigurator):
    """The SDK's configuration from ``OTEL_*`` variables, with the exporters wrapped."""

    def _configure(self, **kwargs: Any) -> None:
        super()._configure(**kwargs)  # type: ignore[no-untyped-call]  # untyped in the SDK
        install()


def post_instrument() -> None:
    """``opentelemetry_post_instrument`` hook: wrap the exporters if no configurator of ours did."""
    try:
        install()
    finally:
        _restore_configurator_variable()


def _restore_configurator_variable() -> None:
    try:
        if _state["set_configurator"] and os.environ.get(OTEL_PYTHON_CONFIGURATOR) == (
            CONFIGURATOR_NAME
        ):
            del os.environ[OTEL_PYTHON_CONFIGURATOR]
        _state["set_configurator"] = False
    except Exception:
        _logger.debug("ragprov: could not restore %s", OTEL_PYTHON_CONFIGURATOR, exc_info=True)
