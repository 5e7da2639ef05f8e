"""The benchmark's socket-level stream reader: it counts every delta event however the response is cut
into pieces, ends at the terminal event, and fails a refused or broken-off turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from loadtests.stream_tap import TapFailed, tap_turn

FRAMES = (
    b'event: turn\ndata: {"user_message":{},"assistant_message":{}}\n\n'
    b'id: 1\nevent: started\ndata: {"model":"m"}\n\n'
    b'id: 2\nevent: reasoning\ndata: {"delta":"event: content is only text here"}\n\n'
    b": heartbeat\n\n"
    b'id: 3\nevent: reasoning\ndata: {"delta":"b"}\n\n'
    b'id: 4\nevent: content\ndata: {"delta":"c"}\n\n'
)
DONE = b'id: 5\nevent: done\ndata: {"message":{}}\n\n'


def chunked(pieces: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


@asynccontextmanager
async def server(respond: Callable[[asyncio.StreamWriter], AsyncIterator[None]]) -> AsyncIterator[str]:
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(
            next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(
                b":"
            )[1]
        )
        requests.append(head + await reader.readexactly(length))
        async for _ in respond(writer):
            await writer.drain()
            await asyncio.sleep(0.01)  # each piece a read of its own
        writer.close()

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listening.close()
        await listening.wait_closed()
    assert requests and b"POST /v1/conversations/c1/messages HTTP/1.1" in requests[0]
    assert b"Authorization: Bearer t0k" in requests[0] and b'"stream":true' in requests[0]


def sse_response(body: bytes, cut_every: int) -> Callable[[asyncio.StreamWriter], AsyncIterator[None]]:
    async def respond(writer: asyncio.StreamWriter) -> AsyncIterator[None]:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        pieces = [body[i : i + cut_every] for i in range(0, len(body), cut_every)]
        wire = chunked(pieces)
        for start in range(0, len(wire), cut_every):
            writer.write(wire[start : start + cut_every])
            yield

    return respond


@pytest.mark.parametrize("cut_every", [7, 40, 10_000])
async def test_every_delta_is_counted_however_the_response_is_cut(cut_every: int) -> None:
    counts: list[int] = []
    async with server(sse_response(FRAMES + DONE, cut_every)) as url:
        await tap_turn(
            url, "t0k", "c1", {"content": "hi"}, on_deltas=lambda _now, count: counts.append(count)
        )
    assert sum(counts) == 3


async def test_a_stream_cut_off_before_its_end_fails() -> None:
    async with server(sse_response(FRAMES, 40)) as url:
        with pytest.raises(TapFailed):
            await tap_turn(url, "t0k", "c1", {"content": "hi"}, on_deltas=lambda _now, _count: None)


async def test_a_refused_turn_fails() -> None:
    async def refuse(writer: asyncio.StreamWriter) -> AsyncIterator[None]:
        body = b'{"error":{"code":"rate_limited"}}'
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        yield

    async with server(refuse) as url:
        with pytest.raises(TapFailed, match="429"):
            await tap_turn(url, "t0k", "c1", {"content": "hi"}, on_deltas=lambda _now, _count: None)
