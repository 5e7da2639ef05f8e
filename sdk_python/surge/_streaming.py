"""Streams of a turn's events that resume themselves when the connection drops.

A stream remembers the ``seq`` of the last event it handed out. When the connection breaks, times out
or ends before the terminal ``done``/``error`` event, it reconnects to
``GET /v1/messages/{id}/events?after=<seq>`` and carries on; an event it has already seen is dropped, and
a jump in ``seq`` makes it reconnect from the last one it saw. If the connection of a streamed send breaks
before the ``turn`` event said which message is being generated, the send is repeated with the same
``Idempotency-Key``, which attaches to the same turn instead of starting a second one. The caller sees
every event exactly once, in order, and never notices.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from surge import _retry
from surge._events import (
    ContentEvent,
    DoneEvent,
    ErrorEvent,
    ReasoningEvent,
    StreamEvent,
    TurnEvent,
    decode_event,
)
from surge._exceptions import APIConnectionError, APIError, SurgeError, TurnFailedError
from surge._options import NOT_GIVEN, NotGiven, RequestOptions, Timeout
from surge._sse import aiter_sse, iter_sse
from surge._types import Message, Turn

if TYPE_CHECKING:
    from surge._base_client import AsyncAPIClient, SyncAPIClient

__all__ = ["AsyncMessageStream", "MessageStream"]

Delta = TypeVar("Delta", ContentEvent, ReasoningEvent)


class _Gap(Exception):
    """Events are missing before the one that arrived: reconnect from the last one seen."""


class TurnProgress:
    """What a stream has seen of one turn, and which arriving events are new to it."""

    def __init__(
        self,
        message_id: str | None,
        after: int,
        *,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message_id = message_id
        self._timeout = timeout
        self._extra_headers = extra_headers
        self.last_seq = after
        self.turn: Turn | None = None
        self.terminal: DoneEvent | ErrorEvent | None = None
        self._content: list[str] = []
        self._reasoning: list[str] = []

    @property
    def content(self) -> str:
        return "".join(self._content)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning)

    def accept(self, name: str, data: bytes | str, seq: int | None) -> StreamEvent | None:
        """The typed event if it is new, ``None`` if it was seen already (or is of an unknown kind)."""
        if name == "turn":
            if self.turn is not None:
                return None  # a repeated send attached to the turn again
        elif seq is not None:
            if seq <= self.last_seq:
                return None
            if seq > self.last_seq + 1:
                raise _Gap
        event = decode_event(name, data, seq=seq, message_id=self.message_id)
        if seq is not None:
            self.last_seq = seq
        if event is not None:
            self.record(event)
        return event

    def accept_turn(self, turn: Turn) -> TurnEvent | None:
        if self.turn is not None:
            return None
        event = TurnEvent(
            user_message=turn.user_message,
            assistant_message=turn.assistant_message,
            message_id=turn.assistant_message.id,
        )
        self.record(event)
        return event

    def record(self, event: StreamEvent) -> None:
        if isinstance(event, TurnEvent):
            self.turn = event.turn
            self.message_id = event.assistant_message.id
        elif isinstance(event, ContentEvent):
            self._content.append(event.delta)
        elif isinstance(event, ReasoningEvent):
            self._reasoning.append(event.delta)
        elif isinstance(event, DoneEvent | ErrorEvent):
            self.terminal = event

    def follow_options(self) -> RequestOptions:
        assert self.message_id is not None
        return RequestOptions(
            method="GET",
            path=f"/v1/messages/{quote(self.message_id, safe='')}/events",
            params={"after": self.last_seq},
            headers={"Accept": "text/event-stream", **(self._extra_headers or {})},
            timeout=self._timeout,
        )

    def final_message(self) -> Message:
        if isinstance(self.terminal, DoneEvent):
            return self.terminal.message
        self.raise_if_failed()
        raise SurgeError("The stream was closed before the turn finished.")

    def raise_if_failed(self) -> None:
        if isinstance(self.terminal, ErrorEvent):
            raise TurnFailedError(
                code=self.terminal.code,
                message=self.terminal.message,
                message_id=self.message_id,
                retry_after=self.terminal.retry_after_s,
            )


def _seq(event_id: str | None) -> int | None:
    try:
        return int(event_id) if event_id else None
    except ValueError:
        return None


def _is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/json")


def _malformed(response: httpx.Response, exc: Exception) -> APIError:
    return APIError(f"Malformed event from {response.request.url.path}: {exc}", request=response.request)


class _StreamBase:
    _progress: TurnProgress
    _resumes: int

    @property
    def message_id(self) -> str | None:
        """The assistant message being generated (known once the ``turn`` event arrived)."""
        return self._progress.message_id

    @property
    def turn(self) -> Turn | None:
        """The user and assistant messages of a streamed send, from its ``turn`` event."""
        return self._progress.turn

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the last event handed out; resume from it with ``client.messages.events(...)``."""
        return self._progress.last_seq

    @property
    def content(self) -> str:
        """The answer text so far."""
        return self._progress.content

    @property
    def reasoning(self) -> str:
        """The reasoning text so far."""
        return self._progress.reasoning

    @property
    def resumes(self) -> int:
        """How many times the stream reconnected after its connection dropped."""
        return self._resumes

    def _give_up(self, failures: int, request: httpx.Request | None, max_resumes: int) -> None:
        if failures > max_resumes:
            message = "The event stream kept breaking before the turn finished."
            if request is None:
                raise SurgeError(message)
            raise APIConnectionError(request=request, message=message)


class MessageStream(_StreamBase):
    """A turn's events as they happen; a context manager that always closes its connection.

    ```py
    with client.messages.stream(conversation.id, "Why is the sky blue?") as stream:
        for text in stream.text_stream:
            print(text, end="", flush=True)
    message = stream.final_message()
    ```

    Iterate it for every typed event (``TurnEvent``, ``QueuedEvent``, ``StartedEvent``, ``ReasoningEvent``,
    ``ContentEvent``, ``DegradedEvent``, then one ``DoneEvent`` or ``ErrorEvent``).
    """

    def __init__(
        self,
        client: SyncAPIClient,
        *,
        start: RequestOptions | None,
        message_id: str | None,
        after: int = 0,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._start = start
        self._progress = TurnProgress(message_id, after, timeout=timeout, extra_headers=extra_headers)
        self._response: httpx.Response | None = None
        self._connections = 0
        self._resumes = 0
        self._source = self._run()
        self._pending: deque[StreamEvent] = deque()  # read ahead by cancel(), not yet handed out
        self._iterator = self._events()

    def __enter__(self) -> MessageStream:
        self._open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamEvent]:
        return self._iterator

    def __next__(self) -> StreamEvent:
        return next(self._iterator)

    def close(self) -> None:
        """Stop reading and release the connection (the turn goes on on the server)."""
        self._iterator.close()
        self._source.close()
        if self._response is not None:
            self._response.close()
            self._response = None

    @property
    def text_stream(self) -> Iterator[str]:
        """The answer's text deltas; raises ``TurnFailedError`` at the end if the turn failed."""
        return self._deltas(ContentEvent)

    @property
    def reasoning_stream(self) -> Iterator[str]:
        """The reasoning's text deltas (other events are consumed silently)."""
        return self._deltas(ReasoningEvent)

    def until_done(self) -> None:
        """Read the stream to its end; raises ``TurnFailedError`` if the turn failed."""
        for _ in self._iterator:
            pass
        self._progress.raise_if_failed()

    def final_message(self) -> Message:
        """The finished assistant message (from ``done``), reading the rest of the stream first."""
        self.until_done()
        return self._progress.final_message()

    def cancel(self) -> Message:
        """Stop the generation upstream; the stream then ends with ``done`` (status ``cancelled``)."""
        if self._progress.message_id is None:
            self._open()
            while self._progress.message_id is None:
                self._pending.append(next(self._source))
        return self._client.request_json(_cancel_options(self._progress.message_id), Message)

    def _events(self) -> Generator[StreamEvent, None, None]:
        while True:
            if self._pending:
                yield self._pending.popleft()
                continue
            try:
                event = next(self._source)
            except StopIteration:
                return
            yield event

    def _deltas(self, kind: type[Delta]) -> Iterator[str]:
        for event in self._iterator:
            if isinstance(event, kind):
                yield event.delta
        self._progress.raise_if_failed()

    def _open(self) -> httpx.Response:
        if self._response is None:
            options = self._progress.follow_options() if self._progress.message_id else self._start
            assert options is not None
            self._connections += 1
            self._response = self._client.request(options, stream=True)
        return self._response

    def _run(self) -> Generator[StreamEvent, None, None]:
        progress = self._progress
        failures = 0  # connections in a row that brought nothing new
        while True:
            try:
                response = self._open()
            except APIConnectionError:
                if self._connections <= 1:
                    raise  # the first connection's failure is the caller's to see
                failures += 1
                self._give_up(failures, None, self._client.max_stream_resumes)
                _retry.sleep(_retry.backoff(failures - 1))
                continue
            progressed = False
            try:
                if _is_json(response):
                    turn_event = progress.accept_turn(msgspec.json.decode(response.read(), type=Turn))
                    if turn_event is not None:
                        progressed = True
                        yield turn_event
                else:
                    for sse in iter_sse(response):
                        event = progress.accept(sse.event, sse.data, _seq(sse.id))
                        if event is None:
                            continue
                        progressed = True
                        yield event
                        if progress.terminal is not None:
                            return
            except (_Gap, httpx.TransportError):
                pass  # resume below
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise _malformed(response, exc) from exc
            finally:
                response.close()
                self._response = None
            failures = 0 if progressed else failures + 1
            self._give_up(failures, response.request, self._client.max_stream_resumes)
            if failures:
                _retry.sleep(_retry.backoff(failures - 1))
            self._resumes += 1


class AsyncMessageStream(_StreamBase):
    """A turn's events as they happen; an async context manager that always closes its connection.

    ```py
    async with client.messages.stream(conversation.id, "Why is the sky blue?") as stream:
        async for text in stream.text_stream:
            print(text, end="", flush=True)
    message = await stream.final_message()
    ```
    """

    def __init__(
        self,
        client: AsyncAPIClient,
        *,
        start: RequestOptions | None,
        message_id: str | None,
        after: int = 0,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._start = start
        self._progress = TurnProgress(message_id, after, timeout=timeout, extra_headers=extra_headers)
        self._response: httpx.Response | None = None
        self._connections = 0
        self._resumes = 0
        self._source = self._run()
        self._pending: deque[StreamEvent] = deque()
        self._iterator = self._events()

    async def __aenter__(self) -> AsyncMessageStream:
        await self._open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._iterator

    async def __anext__(self) -> StreamEvent:
        return await self._iterator.__anext__()

    async def close(self) -> None:
        """Stop reading and release the connection (the turn goes on on the server)."""
        await self._iterator.aclose()
        await self._source.aclose()
        if self._response is not None:
            await self._response.aclose()
            self._response = None

    @property
    def text_stream(self) -> AsyncIterator[str]:
        """The answer's text deltas; raises ``TurnFailedError`` at the end if the turn failed."""
        return self._deltas(ContentEvent)

    @property
    def reasoning_stream(self) -> AsyncIterator[str]:
        """The reasoning's text deltas (other events are consumed silently)."""
        return self._deltas(ReasoningEvent)

    async def until_done(self) -> None:
        """Read the stream to its end; raises ``TurnFailedError`` if the turn failed."""
        async for _ in self._iterator:
            pass
        self._progress.raise_if_failed()

    async def final_message(self) -> Message:
        """The finished assistant message (from ``done``), reading the rest of the stream first."""
        await self.until_done()
        return self._progress.final_message()

    async def cancel(self) -> Message:
        """Stop the generation upstream; the stream then ends with ``done`` (status ``cancelled``)."""
        if self._progress.message_id is None:
            await self._open()
            while self._progress.message_id is None:
                self._pending.append(await self._source.__anext__())
        return await self._client.request_json(_cancel_options(self._progress.message_id), Message)

    async def _events(self) -> AsyncGenerator[StreamEvent, None]:
        while True:
            if self._pending:
                yield self._pending.popleft()
                continue
            try:
                event = await self._source.__anext__()
            except StopAsyncIteration:
                return
            yield event

    async def _deltas(self, kind: type[Delta]) -> AsyncIterator[str]:
        async for event in self._iterator:
            if isinstance(event, kind):
                yield event.delta
        self._progress.raise_if_failed()

    async def _open(self) -> httpx.Response:
        if self._response is None:
            options = self._progress.follow_options() if self._progress.message_id else self._start
            assert options is not None
            self._connections += 1
            self._response = await self._client.request(options, stream=True)
        return self._response

    async def _run(self) -> AsyncGenerator[StreamEvent, None]:
        progress = self._progress
        failures = 0
        while True:
            try:
                response = await self._open()
            except APIConnectionError:
                if self._connections <= 1:
                    raise
                failures += 1
                self._give_up(failures, None, self._client.max_stream_resumes)
                await _retry.async_sleep(_retry.backoff(failures - 1))
                continue
            progressed = False
            try:
                if _is_json(response):
                    turn_event = progress.accept_turn(msgspec.json.decode(await response.aread(), type=Turn))
                    if turn_event is not None:
                        progressed = True
                        yield turn_event
                else:
                    async for sse in aiter_sse(response):
                        event = progress.accept(sse.event, sse.data, _seq(sse.id))
                        if event is None:
                            continue
                        progressed = True
                        yield event
                        if progress.terminal is not None:
                            return
            except (_Gap, httpx.TransportError):
                pass
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise _malformed(response, exc) from exc
            finally:
                await response.aclose()
                self._response = None
            failures = 0 if progressed else failures + 1
            self._give_up(failures, response.request, self._client.max_stream_resumes)
            if failures:
                await _retry.async_sleep(_retry.backoff(failures - 1))
            self._resumes += 1


def _cancel_options(message_id: str) -> RequestOptions:
    return RequestOptions(
        method="POST", path=f"/v1/messages/{quote(message_id, safe='')}/cancel", replay_safe=True
    )
