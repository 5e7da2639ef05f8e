"""Dropping what a run left in a shared Redis: its own keys, all of them, and nobody else's."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from loadtests.redis_keys import drop_prefix
from tests.services import REDIS_URL, redis_available, require


async def test_a_runs_keys_are_dropped_and_nobody_elses() -> None:
    require("Redis", redis_available())
    prefix, neighbour = f"test-{uuid.uuid4().hex}", f"test-{uuid.uuid4().hex}"
    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        # More than one batch of the run's own keys; one of a run beside it; one only starting alike.
        async with redis.pipeline(transaction=False) as pipe:
            for index in range(1500):
                pipe.set(f"{prefix}:turn:{index}", b"x", ex=600)
            pipe.set(f"{neighbour}:turn:0", b"x", ex=600)
            pipe.set(f"{prefix}x:turn:0", b"x", ex=600)
            await pipe.execute()
        assert await drop_prefix(REDIS_URL, prefix) == 1500
        assert [key async for key in redis.scan_iter(match=f"{prefix}:*")] == []
        assert await redis.exists(f"{neighbour}:turn:0", f"{prefix}x:turn:0") == 2
    finally:
        await redis.delete(f"{neighbour}:turn:0", f"{prefix}x:turn:0")
        await redis.aclose()
