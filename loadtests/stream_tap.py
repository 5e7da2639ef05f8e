"""A streamed turn read straight off its socket, for a benchmark's background load.

The SDK reads a stream through httpx and turns every event into a typed object: right for an app, but at
500 open streams ``make bench-gateway``'s driver took 0.9 of the machine's two cores doing it, Surge and
the simulated worker shared the rest, and the held streams' latency measured a starved machine rather
than Surge. Here the event loop hands each piece of the response to a protocol that parses the HTTP with
httptools (C) and only looks for the event names in each SSE frame: nothing is decoded, nothing awaited
per event. The probes whose time to first token is the measurement still go through the SDK.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools
import msgspec

_DELTAS = (b"event: content\n", b"event: reasoning\n")
_ENDS = (b"event: done\n", b"event: error\n")


class TapFailed(Exception):
    """The turn was refused (its status) or its stream broke off before its terminal event."""


class _Tap(asyncio.Protocol):
    """One request on a connection of its own (``Connection: close``), its SSE frames scanned as they come."""

    def __init__(self, on_deltas: Callable[[int], None]) -> None:
        self.on_deltas = on_deltas
        self.parser = httptools.HttpResponseParser(self)
        self.buffer = b""
        self.ended = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(TapFailed(f"bad response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(TapFailed("the connection closed before the turn's end"))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status != 200:
            self._fail(TapFailed(f"status {status}"))

    def on_body(self, body: bytes) -> None:
        frames = (self.buffer + body).split(b"\n\n")
        self.buffer = frames.pop()  # an unfinished frame waits for the rest of it
        deltas = 0
        for frame in frames:
            if any(name in frame for name in _DELTAS):
                deltas += 1
            elif any(name in frame for name in _ENDS):
                self.ended = True
        if deltas:
            self.on_deltas(deltas)

    def on_message_complete(self) -> None:
        if self.ended and not self.done.done():
            self.done.set_result(None)
        self._fail(TapFailed("the stream ended without done or error"))

    def _fail(self, error: TapFailed) -> None:
        if not self.done.done():
            self.done.set_exception(error)


async def tap_turn(
    base_url: str,
    access_token: str,
    conversation_id: str,
    body: dict[str, object],
    *,
    on_deltas: Callable[[float, int], None],
    timeout_s: float = 600.0,
) -> None:
    """Send a turn with ``stream: true`` and read it to its terminal event; ``on_deltas(now, count)`` is
    called for each piece of the response that held delta events (``now``: ``time.perf_counter()``)."""
    address = urlsplit(base_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    payload = msgspec.json.encode({**body, "stream": True})
    head = (
        f"POST /v1/conversations/{conversation_id}/messages HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Authorization: Bearer {access_token}\r\n"
        "Accept: text/event-stream\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
        f"Idempotency-Key: {uuid.uuid4()}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    transport, tap = await loop.create_connection(
        lambda: _Tap(lambda count: on_deltas(time.perf_counter(), count)), host, port
    )
    try:
        transport.write(head + payload)
        async with asyncio.timeout(timeout_s):
            await tap.done
    finally:
        transport.close()
