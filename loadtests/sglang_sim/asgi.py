"""Raw ASGI plumbing: read a body, send JSON, stream server-sent events, notice a client leaving."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_json = msgspec.json.Encoder()
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


class DroppedConnection(Exception):
    """Raised inside a response to make the server drop the TCP connection (fault injection)."""


def encode_json(obj: Any) -> bytes:
    """JSON bytes of a dict/list/Struct."""
    return _json.encode(obj)


def sse(obj: Any) -> bytes:
    """One server-sent event line: `data: <json>` and a blank line."""
    return b"data: " + _json.encode(obj) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


async def read_body(receive: Receive) -> bytes:
    """The whole request body."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def send_bytes(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    """A complete response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, obj: Any) -> None:
    """A JSON response."""
    await send_bytes(send, status, encode_json(obj), b"application/json")


async def send_text(send: Send, status: int, text: str) -> None:
    """A plain-text response (empty text for SGLang's bodiless 200s)."""
    await send_bytes(send, status, text.encode(), b"text/plain; charset=utf-8")


class EventStream:
    """A `text/event-stream` response; headers go out with the first write, as SGLang's do."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.broken = False

    async def write(self, data: bytes, last: bool = False) -> bool:
        """Send `data` (and end the response when `last`); False once the client is gone."""
        if self.broken:
            return False
        try:
            if not self.started:
                self.started = True
                await self._send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            await self._send({"type": "http.response.body", "body": data, "more_body": not last})
        except OSError:  # uvicorn raises ClientDisconnected (an OSError) once the peer has gone
            self.broken = True
            return False
        return True


class DisconnectWatch:
    """Calls `on_disconnect` once if the client goes away before `close()`."""

    def __init__(self, receive: Receive, on_disconnect: Callable[[], None]) -> None:
        self.disconnected = False
        self._receive = receive
        self._on_disconnect = on_disconnect
        self._task = asyncio.get_running_loop().create_task(self._watch())
        self._task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                self._on_disconnect()
                return

    def close(self) -> None:
        """Stop watching (the response is complete)."""
        self._task.cancel()
