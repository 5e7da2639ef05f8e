"""Where replicas agree on the overload state: each posts its own degrade level, an operator may post
an override, and every replica applies the highest fresh level (or the override).

In memory for the embedded single process; a Redis hash and key when replicas share Redis, so that
one replica under pressure pauses sign-ups on all of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

import msgspec
import redis.asyncio as aioredis


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's choice; None leaves that half automatic."""

    level: int | None = None
    signups_open: bool | None = None


@dataclass(frozen=True, slots=True)
class BoardView:
    levels: dict[str, int]  # replica id -> its level, fresh ones only
    override: Override


class OverloadBoard(Protocol):
    async def exchange(self, replica_id: UUID, level: int) -> BoardView:
        """Post this replica's level and read the board, in one round trip (each replica's tick)."""
        ...

    async def set_override(self, override: Override) -> None: ...


class MemoryBoard:
    def __init__(self) -> None:
        self._levels: dict[str, int] = {}
        self._override = Override()

    async def exchange(self, replica_id: UUID, level: int) -> BoardView:
        self._levels[str(replica_id)] = level
        return BoardView(levels=dict(self._levels), override=self._override)

    async def set_override(self, override: Override) -> None:
        self._override = override


class _StoredOverride(msgspec.Struct):
    level: int | None = None
    signups_open: bool | None = None


class RedisBoard:
    def __init__(self, redis: aioredis.Redis, *, fresh_s: float, prefix: str = "surge:overload:") -> None:
        self._redis = redis
        self.LEVELS = f"{prefix}levels"
        self.OVERRIDE = f"{prefix}override"
        # A replica that has not posted for this long is gone (or cut off): its level no longer counts.
        self._fresh_s = fresh_s
        # The levels expire once no replica has posted for a while: a deployment that is gone leaves
        # nothing behind. (The override does not: it is an operator's decision, kept until lifted.)
        self._levels_ttl_ms = max(1000, int(fresh_s * 2000))

    async def exchange(self, replica_id: UUID, level: int) -> BoardView:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.LEVELS, str(replica_id), f"{level}:{time.time():.3f}")
            pipe.pexpire(self.LEVELS, self._levels_ttl_ms)
            pipe.hgetall(self.LEVELS)
            pipe.get(self.OVERRIDE)
            _, _, raw_levels, raw_override = await pipe.execute()
        now, levels, stale = time.time(), {}, []
        for replica, value in raw_levels.items():
            posted, _, posted_at = _text(value).partition(":")
            if now - float(posted_at or 0) <= self._fresh_s:
                levels[_text(replica)] = int(posted)
            else:
                stale.append(replica)
        if stale:
            await self._redis.hdel(self.LEVELS, *stale)
        stored = (
            msgspec.json.decode(raw_override, type=_StoredOverride) if raw_override else _StoredOverride()
        )
        return BoardView(levels=levels, override=Override(stored.level, stored.signups_open))

    async def set_override(self, override: Override) -> None:
        if override == Override():
            await self._redis.delete(self.OVERRIDE)
        else:
            stored = _StoredOverride(level=override.level, signups_open=override.signups_open)
            await self._redis.set(self.OVERRIDE, msgspec.json.encode(stored))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
