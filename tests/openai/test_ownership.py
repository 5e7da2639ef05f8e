"""A streamed answer releases what it holds exactly once, even when its body is never read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from backend.openai_api.ownership import OwnedStream


async def body(lines: list[bytes]) -> AsyncIterator[bytes]:
    for line in lines:
        yield line


async def test_a_stream_read_to_its_end_releases_once():
    released: list[str] = []
    stack = contextlib.AsyncExitStack()
    stack.callback(released.append, "slot")
    owned = OwnedStream(stack, body([b"a", b"b"]), grace_s=0.05)
    assert [line async for line in owned.lines()] == [b"a", b"b"]
    assert released == ["slot"]
    await asyncio.sleep(0.1)  # the grace period passes: nothing is released twice
    await owned.close()
    assert released == ["slot"]


async def test_a_stream_never_read_is_released_after_the_grace_period():
    released: list[str] = []
    stack = contextlib.AsyncExitStack()
    stack.callback(released.append, "slot")
    owned = OwnedStream(stack, body([b"a"]), grace_s=0.05)
    await asyncio.sleep(0.01)
    assert released == []
    await asyncio.sleep(0.1)
    assert released == ["slot"]
    assert [line async for line in owned.lines()] == [], "too late: nothing is sent once released"
