"""A Server-Sent Events decoder (the WHATWG event-stream format) over a response's bytes.

Public as ``surge.iter_sse`` / ``surge.aiter_sse``: the answer streams use it, and so can code that reads
an event stream with an httpx client of its own (an SGLang worker's OpenAI-style chunks, or Surge's
events read raw).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx

__all__ = ["LineSplitter", "SSEDecoder", "ServerSentEvent", "aiter_sse", "iter_sse"]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event of an event stream, as the server sent it: nothing is parsed beyond the format."""

    event: str
    """The ``event:`` field; ``"message"`` when the server sent none (as OpenAI-style streams do)."""
    data: str
    """The ``data:`` lines joined with newlines (JSON, for Surge's events)."""
    id: str | None
    """This event's own ``id:`` field; unlike the spec's last-event-ID buffer, not inherited. Surge sets
    it to the event's ``seq``."""


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
    """The events of a streamed response (``client.stream(...)`` or ``send(..., stream=True)``) as they
    arrive; comments such as ``: ping`` are skipped, and an event cut off by the end is never yielded.

    ```py
    with httpx.stream("POST", url, json=body) as response:
        for event in surge.iter_sse(response):
            print(event.event, event.data)
    ```
    """
    lines, decoder = LineSplitter(), SSEDecoder()
    for chunk in response.iter_bytes():
        for line in lines.feed(chunk):
            event = decoder.decode(line)
            if event is not None:
                yield event


async def aiter_sse(response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    """``iter_sse`` for an ``httpx.AsyncClient``'s streamed response."""
    lines, decoder = LineSplitter(), SSEDecoder()
    async for chunk in response.aiter_bytes():
        for line in lines.feed(chunk):
            event = decoder.decode(line)
            if event is not None:
                yield event
