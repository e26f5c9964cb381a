"""Proxies around what an LLM call returns before its response is read.

A stream (:class:`SyncStreamProxy`, :class:`AsyncStreamProxy`) feeds each event to its call and
finishes it when exhausted, closed, failed or garbage-collected; a raw response whose body is not
read yet (:class:`RawResponseProxy`) finishes it on ``parse()`` / ``close()``. ``isinstance``
checks and every other attribute see the client's own object.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import wrapt

from ragprov.instrumentation._patching import log_once

if TYPE_CHECKING:
    from ragprov.instrumentation._llm_call import LLMCall


class SyncStreamProxy(wrapt.ObjectProxy[Any]):
    """The client's stream, observed: every event is fed to the call; the call finishes when
    the stream is exhausted, fails, is closed (``close()``, ``with``) or garbage-collected.
    ``isinstance`` checks and every other attribute see the client's own stream."""

    def __init__(self, stream: Any, call: LLMCall) -> None:
        super().__init__(stream)
        self._self_call = call

    def __iter__(self) -> Iterator[Any]:
        return self._self_events()

    def _self_events(self) -> Iterator[Any]:
        # A generator calling the accumulator directly: resuming it costs less than a __next__
        # call per event, and there is one Python call per event.
        call = self._self_call
        observe: Callable[[Any], object] | None = None
        try:
            for event in self.__wrapped__:
                try:
                    if observe is None:
                        observe = call.observer()
                    observe(event)
                except Exception:
                    observe = call.observe_failed()
                yield event
        except GeneratorExit:
            # The loop stopped (break) or was dropped: the stream may still be read on, and
            # ends when exhausted, closed or collected.
            raise
        except BaseException as error:
            call.stream_end(error)
            raise
        call.stream_end(None)

    def __next__(self) -> Any:
        try:
            event = self.__wrapped__.__next__()
        except StopIteration:
            self._self_call.stream_end(None)
            raise
        except BaseException as error:
            self._self_call.stream_end(error)
            raise
        self._self_call.stream_event(event)
        return event

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            self._self_call.stream_end(None)

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_call.stream_end(None)

    def __del__(self) -> None:
        call = getattr(self, "_self_call", None)
        if call is not None and not call.finished:
            call.stream_end(None)


class AsyncStreamProxy(wrapt.ObjectProxy[Any]):
    """The async twin of :class:`SyncStreamProxy`."""

    def __init__(self, stream: Any, call: LLMCall) -> None:
        super().__init__(stream)
        self._self_call = call

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        try:
            event = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_call.stream_end(None)
            raise
        except BaseException as error:
            self._self_call.stream_end(error)
            raise
        self._self_call.stream_event(event)
        return event

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._self_call.stream_end(None)

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_call.stream_end(None)

    def __del__(self) -> None:
        call = getattr(self, "_self_call", None)
        if call is not None and not call.finished:
            call.stream_end(None)


class RawResponseProxy(wrapt.ObjectProxy[Any]):
    """A raw response whose body is not read yet (a stream, or ``with_streaming_response``):
    ``parse()`` returns the parsed result (a stream comes back observed) and finishes the call;
    ``close()`` or garbage collection end it without a response."""

    def __init__(self, response: Any, call: LLMCall) -> None:
        super().__init__(response)
        self._self_call = call

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        call = self._self_call
        try:
            result = self.__wrapped__.parse(*args, **kwargs)
        except BaseException as error:
            call.stream_end(error)
            raise
        if inspect.isawaitable(result):
            return self._await_parsed(result)
        return self._parsed(result)

    async def _await_parsed(self, awaitable: Any) -> Any:
        try:
            result = await awaitable
        except BaseException as error:
            self._self_call.stream_end(error)
            raise
        return self._parsed(result)

    def _parsed(self, result: Any) -> Any:
        call = self._self_call
        if call.finished:
            return result
        try:
            return call.handle_parsed(result)
        except Exception:
            log_once("could not record an LLM response")
            call.end(None)
            return result

    def close(self) -> Any:
        result = self.__wrapped__.close()
        if inspect.isawaitable(result):
            return self._await_close(result)
        self._self_call.stream_end(None)
        return result

    async def _await_close(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        finally:
            self._self_call.stream_end(None)

    def __del__(self) -> None:
        call = getattr(self, "_self_call", None)
        if call is not None and not call.finished:
            call.stream_end(None)
