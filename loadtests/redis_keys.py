"""What a run of Surge leaves in a shared Redis, dropped by its key prefix (``SURGE_REDIS_KEY_PREFIX``).

A Surge stopped while turns were running leaves their streams behind with the TTL of a running turn, a
day; a benchmark or a test that gives each Surge its own prefix drops that prefix when it is done.
"""

from __future__ import annotations

import redis.asyncio as aioredis

_BATCH = 1000


async def drop_prefix(redis_url: str, prefix: str) -> int:
    """Delete every key under ``{prefix}:``; returns how many went."""
    redis = aioredis.Redis.from_url(redis_url)
    dropped = 0
    try:
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=f"{prefix}:*", count=_BATCH):
            batch.append(key)
            if len(batch) >= _BATCH:
                dropped += await redis.unlink(*batch)
                batch = []
        if batch:
            dropped += await redis.unlink(*batch)
    finally:
        await redis.aclose()
    return dropped
