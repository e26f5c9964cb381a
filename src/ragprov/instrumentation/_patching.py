"""What every ragprov instrumentor shares: lazy patching, exact unpatching, quiet failures.

:class:`PatchingInstrumentor` is the base of the vector-store and LLM-client instrumentors. A
subclass names its library, builds what its wrappers need from the tracer provider
(:meth:`~PatchingInstrumentor._context`), imports the client library only inside
:meth:`~PatchingInstrumentor._patch`, and patches with :meth:`~PatchingInstrumentor._wrap`;
``uninstrument()`` puts back exactly what was patched.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Span, Status, StatusCode

_logger = logging.getLogger("ragprov.instrumentation")

#: A wrapt wrapper: (wrapped, instance, args, kwargs) -> result.
Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]

C = TypeVar("C")

_logged_once: set[str] = set()
_logged_lock = threading.Lock()


def log_once(what: str) -> None:
    """Log an instrumentation failure with its traceback the first time, then at debug level.

    Call from an ``except`` block. The host application never sees the error.
    """
    with _logged_lock:
        first = what not in _logged_once
        _logged_once.add(what)
    if first:
        _logger.warning("ragprov instrumentation: %s (logged once)", what, exc_info=True)
    else:
        _logger.debug("ragprov instrumentation: %s", what, exc_info=True)


class PatchingInstrumentor(BaseInstrumentor, Generic[C]):  # type: ignore[misc]
    """Lazy patching and exact unpatching; ``instrument(tracer_provider=...)`` picks the provider.

    Subclasses set :attr:`library` (used in logs), build their wrappers' context in
    :meth:`_context` and patch in :meth:`_patch`.
    """

    library: ClassVar[str] = ""

    def _context(self, tracer_provider: trace.TracerProvider | None) -> C:
        raise NotImplementedError

    def _patch(self, context: C) -> None:
        raise NotImplementedError

    def _instrument(self, **kwargs: Any) -> None:
        provider = kwargs.get("tracer_provider")
        context = self._context(provider if isinstance(provider, trace.TracerProvider) else None)
        self._patched: list[tuple[Any, str]] = []
        try:
            self._patch(context)
        except ModuleNotFoundError:
            # The client library is not installed. opentelemetry-instrument skips its dependency
            # check and treats this error as "not installed" (a debug log); an explicit
            # instrument() call never gets here, its dependency check stops first.
            self._uninstrument()
            raise
        except Exception:
            log_once(f"could not instrument {self.library}")

    def _wrap(self, owner: Any, name: str, wrapper: Wrapper) -> bool:
        """Patch ``owner.name`` where it is defined (for a class: the first class of its MRO
        that defines it); False when it does not exist or is already patched by this
        instrumentor. ``_uninstrument`` puts back exactly what was there."""
        if isinstance(owner, type):
            owner = next((cls for cls in owner.__mro__ if name in vars(cls)), None)
        if owner is None or not callable(getattr(owner, name, None)):
            return False
        if any(patched is owner and attr == name for patched, attr in self._patched):
            return False
        wrapt.wrap_function_wrapper(owner, name, wrapper)
        self._patched.append((owner, name))
        return True

    def _uninstrument(self, **kwargs: Any) -> None:
        for owner, name in reversed(getattr(self, "_patched", [])):
            try:
                unwrap(owner, name)
            except Exception:
                log_once(f"could not uninstrument {self.library}")
        self._patched = []


_MISSING: Any = object()


def call_argument(
    args: Sequence[Any], kwargs: Mapping[str, Any], name: str, position: int, default: Any = None
) -> Any:
    """The argument ``name`` of a call, passed by keyword or at ``position`` (after self)."""
    value = kwargs.get(name, _MISSING)
    if value is not _MISSING:
        return value
    return args[position] if 0 <= position < len(args) else default


def is_fatal(error: BaseException) -> bool:
    """An interrupt, exit or cancellation: it stops the call, it is not an error of the call."""
    return isinstance(error, (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError))


def record_error(span: Span, error: BaseException) -> None:
    """Status ERROR, ``error.type`` (the exception's qualified class name), the exception event.

    A fatal error (:func:`is_fatal`) is not recorded: the span just ends. Other
    ``BaseException`` subclasses are (a Rust panic in a pyo3 client is one).
    """
    if is_fatal(error):
        return
    try:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__qualname__}: {error}"))
        span.set_attribute(ERROR_TYPE, type(error).__qualname__)
    except Exception:
        log_once("could not record an error on a span")
