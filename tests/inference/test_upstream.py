"""Streamed chat over Surge's own connections: items reach the sink as the chunks arrive, connections are
kept and reused, a kept connection the worker closed is retried on a fresh one, and every failure is an
``UpstreamError`` with the worker's status."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from backend.inference.upstream import UpstreamStreams
from backend.inference.wire import ChatRequest, Delta, Finish, UpstreamError, Usage

REQUEST = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], rid="r", max_tokens=8)


def chunk(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def delta(**fields: str) -> bytes:
    return chunk({"choices": [{"index": 0, "delta": fields}]})


STREAM = [
    delta(role="assistant", content=""),
    delta(reasoning_content="Let me"),
    delta(reasoning_content=" think."),
    delta(content="Four."),
    chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    chunk(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": 3,
                "reasoning_tokens": 2,
                "prompt_tokens_details": {"cached_tokens": 4},
            },
        }
    ),
    b"data: [DONE]\n\n",
]


@dataclass
class Sink:
    items: list[object] = field(default_factory=list)

    def delta(self, item: Delta) -> None:
        self.items.append(item)

    def finish(self, item: Finish) -> None:
        self.items.append(item)

    def usage(self, item: Usage) -> None:
        self.items.append(item)


@dataclass
class FakeWorker:
    """An HTTP/1.1 server answering each request with ``respond(writer)``; counts its connections."""

    respond: Callable[[asyncio.StreamWriter], object]
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    url: str = ""


@contextlib.asynccontextmanager
async def fake_worker(respond: Callable[[asyncio.StreamWriter], object]) -> AsyncIterator[FakeWorker]:
    worker = FakeWorker(respond)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        worker.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(
                        line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
                    ).split(b":")[1]
                )
                worker.requests.append(await reader.readexactly(length))
                result = worker.respond(writer)
                if asyncio.iscoroutine(result):
                    await result
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    worker.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield worker
    finally:
        server.close()


def chunked(parts: list[bytes]) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return body + b"0\r\n\r\n"


def streamed(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    writer.write(chunked(STREAM))


async def test_items_reach_the_sink_in_order_and_the_connection_is_kept_for_the_next_stream():
    async with fake_worker(streamed) as worker:
        streams = UpstreamStreams()
        try:
            first, second = Sink(), Sink()
            await streams.stream_chat(worker.url, REQUEST, first)
            await streams.stream_chat(worker.url, REQUEST, second)
        finally:
            await streams.close()
    assert (
        first.items
        == second.items
        == [
            Delta(reasoning="Let me"),
            Delta(reasoning=" think."),
            Delta(content="Four."),
            Finish("stop"),
            Usage(prompt_tokens=5, completion_tokens=3, reasoning_tokens=2, cached_tokens=4),
        ]
    )
    assert worker.connections == 1
    assert json.loads(worker.requests[0])["stream"] is True


async def test_a_kept_connection_the_worker_closed_is_retried_on_a_fresh_one():
    def once_per_connection(writer: asyncio.StreamWriter) -> None:
        streamed(writer)
        writer.close()  # without saying so: the client still thinks it may keep the connection

    async with fake_worker(once_per_connection) as worker:
        streams = UpstreamStreams()
        try:
            await streams.stream_chat(worker.url, REQUEST, Sink())
            await asyncio.sleep(0.05)
            again = Sink()
            await streams.stream_chat(worker.url, REQUEST, again)
        finally:
            await streams.close()
    assert Finish("stop") in again.items
    assert worker.connections == 2


@pytest.mark.parametrize(("status", "code"), [(400, "context_too_long"), (503, "upstream_error")])
async def test_a_refusal_is_an_upstream_error_with_the_workers_status(status, code):
    def refuse(writer: asyncio.StreamWriter) -> None:
        body = b'{"object": "error", "message": "no"}'
        writer.write(b"HTTP/1.1 %d Nope\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))

    async with fake_worker(refuse) as worker:
        streams = UpstreamStreams()
        try:
            with pytest.raises(UpstreamError) as raised:
                await streams.stream_chat(worker.url, REQUEST, Sink())
        finally:
            await streams.close()
    assert (raised.value.status, raised.value.code) == (status, code)
    assert raised.value.retryable is (status >= 500)


async def test_an_error_after_the_stream_began_is_an_upstream_error():
    def queue_full(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        error = chunk({"error": {"object": "error", "message": "The request queue is full.", "code": 503}})
        writer.write(chunked([STREAM[1], error, b"data: [DONE]\n\n"]))

    async with fake_worker(queue_full) as worker:
        streams, sink = UpstreamStreams(), Sink()
        try:
            with pytest.raises(UpstreamError) as raised:
                await streams.stream_chat(worker.url, REQUEST, sink)
        finally:
            await streams.close()
    assert raised.value.status == 503 and "queue is full" in raised.value.message
    assert sink.items == [Delta(reasoning="Let me")]


async def test_an_unreachable_worker_is_an_upstream_error():
    streams = UpstreamStreams(connect_timeout_s=1)
    with pytest.raises(UpstreamError) as raised:
        await streams.stream_chat("http://127.0.0.1:1", REQUEST, Sink())
    assert raised.value.retryable


async def test_cancelling_a_stream_drops_its_connection():
    dropped = asyncio.Event()

    async def endless(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            while not writer.is_closing():
                writer.write(chunked([STREAM[1]])[:-5])  # a chunk, never the last one
                await writer.drain()
                await asyncio.sleep(0.01)
        dropped.set()

    async with fake_worker(endless) as worker:
        streams, sink = UpstreamStreams(), Sink()
        task = asyncio.create_task(streams.stream_chat(worker.url, REQUEST, sink))
        for _ in range(500):
            if sink.items:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(dropped.wait(), 5)
        await streams.close()
