"""A Server-Sent Events decoder (the WHATWG event-stream format) over a response's bytes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None
    """This event's own ``id:`` field; unlike the spec's last-event-ID buffer, not inherited."""


# The event-stream format ends lines with CRLF, LF or CR, and nothing else. (httpx's iter_lines() also
# splits at U+2028, U+0085 and friends, which a JSON string may carry unescaped.)
_LINE_END = re.compile(rb"\r\n|\r|\n")


class LineSplitter:
    """Complete lines out of arbitrary chunks; a line still open when the stream ends is never returned."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[str]:
        data = self._buffer + chunk
        # A CR at the end may be the first half of a CRLF: decide once the next byte is here.
        end = len(data) - 1 if data.endswith(b"\r") else len(data)
        lines = _LINE_END.split(data[:end])
        self._buffer = lines.pop() + data[end:]
        return [line.decode("utf-8", errors="replace") for line in lines]


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
    lines, decoder = LineSplitter(), SSEDecoder()
    for chunk in response.iter_bytes():
        for line in lines.feed(chunk):
            event = decoder.decode(line)
            if event is not None:
                yield event


async def aiter_sse(response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    lines, decoder = LineSplitter(), SSEDecoder()
    async for chunk in response.aiter_bytes():
        for line in lines.feed(chunk):
            event = decoder.decode(line)
            if event is not None:
                yield event
