"""The event log's guarantees, for both implementations: numbering, replay from any offset, following
live until the terminal event, heartbeats when idle, and who is watching."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from backend.chat.event_log import EventLog, MemoryEventLog, RedisEventLog
from tests.services import REDIS_URL, redis_available, require


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def event_log(request: pytest.FixtureRequest) -> AsyncIterator[EventLog]:
    if request.param == "memory":
        yield MemoryEventLog(ttl_s=60)
        return
    require("Redis", redis_available())
    client = aioredis.Redis.from_url(REDIS_URL)
    prefix = f"surge-test-{uuid.uuid4().hex[:8]}"
    log = RedisEventLog(client, ttl_s=60, prefix=prefix)
    await log.start()
    try:
        yield log
    finally:
        await log.close()
        keys = [key async for key in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def collect(log: EventLog, turn: uuid.UUID, after: int) -> list[tuple[int, str]]:
    return [(e.seq, e.event) async for batch in log.follow(turn, after, heartbeat_s=5) for e in batch or ()]


def caught_up(log: EventLog) -> asyncio.Event:
    """Set once a follower of ``log`` has read everything there was and so waits for what comes next.

    (A follower takes its wake-up before it reads: anything appended after that read wakes it.) Without
    this, an append made before the follower got that far would reach it as replay, and the test would
    pass without the live path being used at all."""
    waiting = asyncio.Event()
    read = log.read

    async def recording_read(turn_id: uuid.UUID, after: int = 0):  # type: ignore[no-untyped-def]
        events = await read(turn_id, after)
        if not events:
            waiting.set()
        return events

    log.read = recording_read  # type: ignore[method-assign]
    return waiting


async def test_events_are_numbered_from_one(event_log):
    turn = uuid.uuid4()
    entries = [await event_log.append(turn, name, {"delta": name}) for name in ("started", "content", "done")]
    assert [entry.seq for entry in entries] == [1, 2, 3]
    assert [(e.seq, e.event, e.payload()) for e in await event_log.read(turn, 1)] == [
        (2, "content", {"delta": "content"}),
        (3, "done", {"delta": "done"}),
    ]


async def test_following_replays_then_continues_live_until_the_terminal_event(event_log):
    turn = uuid.uuid4()
    await event_log.append(turn, "started", {"model": "m"})
    await event_log.append(turn, "content", {"delta": "a"})
    live = caught_up(event_log)
    follower = asyncio.create_task(collect(event_log, turn, 0))
    await asyncio.wait_for(live.wait(), 5)
    await event_log.append(turn, "content", {"delta": "b"})
    await event_log.append(turn, "done", {"message": {}})
    await event_log.append(turn, "content", {"delta": "never read"})
    assert await asyncio.wait_for(follower, 4) == [
        (1, "started"),
        (2, "content"),
        (3, "content"),
        (4, "done"),
    ]


@pytest.mark.parametrize("after", [0, 1, 2, 3])
async def test_following_after_k_yields_exactly_the_rest(event_log, after):
    turn = uuid.uuid4()
    for name in ("started", "reasoning", "content", "done"):
        await event_log.append(turn, name, {})
    assert [seq for seq, _ in await collect(event_log, turn, after)] == list(range(after + 1, 5))


async def test_a_follower_waiting_for_the_first_event_is_woken(event_log):
    turn = uuid.uuid4()
    waiting = caught_up(event_log)
    follower = asyncio.create_task(collect(event_log, turn, 0))
    await asyncio.wait_for(waiting.wait(), 5)
    await event_log.append(turn, "error", {"code": "x", "message": "y"})
    # Woken by the append, not by its next heartbeat (5 s away).
    assert await asyncio.wait_for(follower, 2) == [(1, "error")]


async def test_an_idle_follower_gets_heartbeats(event_log):
    turn = uuid.uuid4()
    await event_log.append(turn, "started", {})
    stream = event_log.follow(turn, 1, heartbeat_s=0.05)
    assert await asyncio.wait_for(anext(stream), 2) is None
    await stream.aclose()


async def test_watchers_are_counted_while_attached(event_log):
    turn = uuid.uuid4()
    assert await event_log.watchers(turn) == 0
    async with event_log.watching(turn), event_log.watching(turn):
        assert await event_log.watchers(turn) == 2
    assert await event_log.watchers(turn) == 0


@pytest.mark.redis
async def test_a_second_writer_continues_the_numbering_and_a_reader_on_another_instance_follows():
    require("Redis", redis_available())
    prefix = f"surge-test-{uuid.uuid4().hex[:8]}"
    first_client, second_client = aioredis.Redis.from_url(REDIS_URL), aioredis.Redis.from_url(REDIS_URL)
    writer, reader = (
        RedisEventLog(first_client, ttl_s=60, prefix=prefix),
        RedisEventLog(second_client, ttl_s=60, prefix=prefix),
    )
    await reader.start()
    try:
        turn = uuid.uuid4()
        await writer.append(turn, "started", {})
        live = caught_up(reader)
        follower = asyncio.create_task(collect(reader, turn, 0))
        await asyncio.wait_for(live.wait(), 5)
        await writer.append(turn, "content", {"delta": "x"})
        # A replica taking over the turn continues where the dead one stopped.
        takeover = RedisEventLog(first_client, ttl_s=60, prefix=prefix)
        entry = await takeover.append(turn, "error", {"code": "interrupted", "message": ""})
        assert entry.seq == 3
        # Woken through Redis by the other instances' appends, not by its heartbeat (5 s away).
        assert await asyncio.wait_for(follower, 4) == [(1, "started"), (2, "content"), (3, "error")]
    finally:
        await reader.close()
        keys = [key async for key in first_client.scan_iter(f"{prefix}:*")]
        if keys:
            await first_client.delete(*keys)
        await first_client.aclose()
        await second_client.aclose()
