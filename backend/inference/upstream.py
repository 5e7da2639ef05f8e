"""SGLang's streamed chat over connections of Surge's own: the hot path of the whole service.

SGLang sends one chunk per token. An HTTP client library hands a response body to a coroutine that awaits
each piece of it, so every token costs a task wake-up or two. Here the event loop gives each piece of the
response straight to a protocol that parses it (httptools, in C), splits it into SSE lines, decodes them
(msgspec) and hands the deltas to the turn's sink, synchronously: nothing is awaited per token. The turn
awaits one future, the end of its stream. Connections are kept alive and reused, per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import httptools
import msgspec

from backend.inference.wire import ChatRequest, Delta, Finish, UpstreamError, Usage, decode_items

# An error body is kept up to this many bytes (it is only quoted in a log line).
_ERROR_BODY_BYTES = 4096
# Idle connections kept per worker for the next stream, and for how long: less than a server's keep-alive
# timeout (uvicorn's, which SGLang runs on, is 5 s), so that a kept connection is seldom one it closed.
_IDLE_PER_WORKER = 256
_IDLE_S = 4.0


class StreamSink(Protocol):
    """Where a stream's items go, as they arrive (called from the event loop's I/O callback)."""

    def delta(self, item: Delta) -> None: ...

    def finish(self, item: Finish) -> None: ...

    def usage(self, item: Usage) -> None: ...


class _Address:
    __slots__ = ("host", "path", "port", "ssl")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.ssl = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.ssl else 80)
        self.path = parts.path.rstrip("/")


class _Exchange(asyncio.Protocol):
    """One connection to a worker; one streamed request at a time on it."""

    def __init__(self, on_idle: Callable[[_Exchange], None]) -> None:
        self.on_idle = on_idle
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: StreamSink | None = None
        self.done: asyncio.Future[None] | None = None
        self.status = 0
        self.tail = b""
        self.error_body = bytearray()
        self.closed = False
        self.idle_since = 0.0
        self.error: UpstreamError | None = None

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # a malformed response: the stream fails, not the loop
            self._fail(self.error or UpstreamError(f"bad response from the worker: {exc}"))
            return
        if self.error is not None:
            self._fail(self.error)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamError("worker unreachable or connection lost"))

    # --- httptools callbacks ---
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.error is not None:
            return
        try:
            self._on_body(body)
        except Exception as exc:
            # Raised from here, httptools would swallow it into a parser error of its own: keep it.
            self.error = exc if isinstance(exc, UpstreamError) else UpstreamError(f"bad chunk: {exc}")

    def _on_body(self, body: bytes) -> None:
        if self.status != 200:
            if len(self.error_body) < _ERROR_BODY_BYTES:
                self.error_body += body[: _ERROR_BODY_BYTES - len(self.error_body)]
            return
        lines = (self.tail + body).split(b"\n") if self.tail else body.split(b"\n")
        self.tail = lines.pop()
        sink = self.sink
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]" or sink is None:
                continue
            for item in decode_items(data):
                if isinstance(item, Delta):
                    sink.delta(item)
                elif isinstance(item, Finish):
                    sink.finish(item)
                else:
                    sink.usage(item)

    def on_message_complete(self) -> None:
        if self.error is not None:
            return  # data_received fails the stream once the parser is done with this piece
        done, self.done, self.sink = self.done, None, None
        if self.status != 200:
            body = self.error_body.decode(errors="replace")[:500]
            error = UpstreamError(
                f"worker answered {self.status}: {body}",
                status=self.status,
                code="context_too_long" if self.status == 400 else "upstream_error",
            )
            if done is not None and not done.done():
                done.set_exception(error)
            return
        if done is not None and not done.done():
            done.set_result(None)
        if self.parser.should_keep_alive():
            self.on_idle(self)
        else:
            self.close()

    # --- use ---
    def send(self, head: bytes, body: bytes, sink: StreamSink) -> asyncio.Future[None]:
        assert self.transport is not None
        self.sink, self.status, self.tail, self.error = sink, 0, b"", None
        self.error_body.clear()
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(head + body)
        return self.done

    def _fail(self, error: UpstreamError) -> None:
        done, self.done, self.sink = self.done, None, None
        if done is not None and not done.done():
            done.set_exception(error)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class UpstreamStreams:
    """Streamed chat completions to SGLang workers, over kept-alive connections of Surge's own."""

    def __init__(self, *, connect_timeout_s: float = 5.0) -> None:
        self.connect_timeout_s = connect_timeout_s
        self._idle: dict[str, list[_Exchange]] = {}
        self._addresses: dict[str, _Address] = {}
        self._tls: ssl.SSLContext | None = None

    async def stream_chat(self, worker: str, request: ChatRequest, sink: StreamSink) -> None:
        """Stream ``request`` from ``worker`` into ``sink``; returns at the end of the stream, raises
        ``UpstreamError`` when the worker refuses, breaks or is unreachable. Cancelled (a cancel, a
        timeout), the connection is dropped: SGLang aborts a request whose client went away."""
        address = self._addresses.get(worker) or self._addresses.setdefault(worker, _Address(worker))
        body = msgspec.json.encode(request.payload(stream=True))
        head = (
            f"POST {address.path}/v1/chat/completions HTTP/1.1\r\nHost: {address.host}:{address.port}\r\n"
            f"Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {len(body)}\r\n"
            "Connection: keep-alive\r\n\r\n"
        ).encode()
        exchange, reused = await self._connection(worker, address)
        try:
            await self._exchange(exchange, head, body, sink)
        except UpstreamError:
            if not (reused and exchange.status == 0):
                raise
            # A kept connection the worker had closed before it read a byte: not the worker's failure.
            exchange, _ = await self._connection(worker, address, fresh=True)
            await self._exchange(exchange, head, body, sink)

    @staticmethod
    async def _exchange(exchange: _Exchange, head: bytes, body: bytes, sink: StreamSink) -> None:
        done = exchange.send(head, body, sink)
        ended = False
        try:
            await done
            ended = True
        finally:
            if not ended:  # cancelled mid-stream (awaiting it cancelled the future too), or failed
                exchange.close()

    async def _connection(
        self, worker: str, address: _Address, *, fresh: bool = False
    ) -> tuple[_Exchange, bool]:
        """A connection to ``worker``, and whether it was kept from an earlier stream."""
        idle = self._idle.get(worker)
        now = asyncio.get_running_loop().time()
        while idle and not fresh:
            exchange = idle.pop()
            if not exchange.closed and now - exchange.idle_since < _IDLE_S:
                return exchange, True
            exchange.close()
        loop = asyncio.get_running_loop()

        def returned(exchange: _Exchange) -> None:
            pool = self._idle.setdefault(worker, [])
            if len(pool) < _IDLE_PER_WORKER:
                exchange.idle_since = loop.time()
                pool.append(exchange)
            else:
                exchange.close()

        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, protocol = await loop.create_connection(
                    lambda: _Exchange(returned), address.host, address.port, ssl=self._ssl(address)
                )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"worker unreachable: {type(exc).__name__}") from exc
        return protocol, False

    def _ssl(self, address: _Address) -> ssl.SSLContext | None:
        if not address.ssl:
            return None
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    async def close(self) -> None:
        for pool in self._idle.values():
            for exchange in pool:
                with contextlib.suppress(Exception):
                    exchange.close()
        self._idle.clear()
