"""A Server-Sent Events decoder (the WHATWG event-stream format) over httpx's decoded lines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None
    """This event's own ``id:`` field; unlike the spec's last-event-ID buffer, not inherited."""


class SSEDecoder:
    """Feed it lines (without their terminator); it returns an event at each blank line.

    An event cut off by the end of the stream is never dispatched: a stream that breaks in the middle of
    an event loses only that event, which the resuming caller asks for again.
    """

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def decode(self, line: str) -> ServerSentEvent | None:
        if not line:
            # As the spec says: a block without data lines dispatches nothing.
            event = (
                ServerSentEvent(self._event or "message", "\n".join(self._data), self._id)
                if self._data
                else None
            )
            self._event, self._data, self._id = "", [], None
            return event
        if line.startswith(":"):
            return None  # a comment, such as the server's ": ping"
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        # "retry" and unknown fields are ignored: the SDK schedules its own reconnections.
        return None


def iter_sse(response: httpx.Response) -> Iterator[ServerSentEvent]:
    decoder = SSEDecoder()
    for line in response.iter_lines():
        event = decoder.decode(line)
        if event is not None:
            yield event


async def aiter_sse(response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    decoder = SSEDecoder()
    async for line in response.aiter_lines():
        event = decoder.decode(line)
        if event is not None:
            yield event
