"""Each turn's event log: appended by the replica generating it, read from any offset by any replica.

Two implementations of one interface: in memory (the embedded single process) and Redis Streams
(several replicas). Guarantees (API.md): sequence numbers 1, 2, 3, ... per turn; a reader resuming
after ``k`` gets exactly ``k+1, k+2, ...``; the log ends with one ``done`` or ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol, cast, runtime_checkable
from uuid import UUID

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from backend.chat.events import TurnEvent, encode_data

# A follower that has seen nothing new for this long gets ``None`` so that it can send a heartbeat.
HEARTBEAT_S = 15.0


# Checkable: Litestar checks each dependency a route declares against its annotation.
@runtime_checkable
class EventLog(Protocol):
    async def append(self, turn_id: UUID, event: str, data: Any) -> TurnEvent:
        """Add the next event (single writer per turn); a terminal event starts the log's expiry."""
        ...

    async def read(self, turn_id: UUID, after: int = 0) -> list[TurnEvent]:
        """The events after ``after`` that exist now (empty if the log is unknown or expired)."""
        ...

    def follow(
        self, turn_id: UUID, after: int, *, heartbeat_s: float = HEARTBEAT_S
    ) -> AsyncIterator[list[TurnEvent] | None]:
        """Replay after ``after``, then follow live until the terminal event, in batches of whatever is
        there at each wake-up; ``None`` means "idle" (time for a heartbeat)."""
        ...

    def watching(self, turn_id: UUID) -> contextlib.AbstractAsyncContextManager[None]:
        """Count a client as attached to the turn's stream while inside this block (any replica)."""
        ...

    async def watchers(self, turn_id: UUID) -> int:
        """Clients attached to the turn's stream right now, on every replica."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class _Pulse:
    """Wakes every waiter once per append; taking the pulse before reading means no wake-up is lost."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def fire(self) -> None:
        self.event.set()
        self.event = asyncio.Event()


async def _follow(
    log: Any, turn_id: UUID, after: int, heartbeat_s: float
) -> AsyncIterator[list[TurnEvent] | None]:
    position = after
    while True:
        pulse = log.pulse(turn_id).event
        events = await log.read(turn_id, position)
        if events:
            end = next((index for index, event in enumerate(events) if event.terminal), None)
            if end is not None:
                yield events[: end + 1]
                return
            # Everything that piled up since the last read goes out at once: one write, not one each.
            yield events
            position = events[-1].seq
            continue
        try:
            async with asyncio.timeout(heartbeat_s):
                await pulse.wait()
        except TimeoutError:
            yield None


class MemoryEventLog:
    """Everything in this process: right for the embedded default, which refuses a second process."""

    def __init__(self, *, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._events: dict[UUID, list[TurnEvent]] = {}
        self._pulses: dict[UUID, _Pulse] = {}
        self._watchers: dict[UUID, int] = {}
        self._expiry: dict[UUID, float] = {}

    def pulse(self, turn_id: UUID) -> _Pulse:
        return self._pulses.setdefault(turn_id, _Pulse())

    async def append(self, turn_id: UUID, event: str, data: Any) -> TurnEvent:
        events = self._events.setdefault(turn_id, [])
        entry = TurnEvent(seq=len(events) + 1, event=event, data=encode_data(data))
        events.append(entry)
        if entry.terminal:
            self._expiry[turn_id] = time.monotonic() + self.ttl_s
            self._expire()
        self.pulse(turn_id).fire()
        return entry

    async def read(self, turn_id: UUID, after: int = 0) -> list[TurnEvent]:
        return self._events.get(turn_id, [])[after:]

    def follow(
        self, turn_id: UUID, after: int, *, heartbeat_s: float = HEARTBEAT_S
    ) -> AsyncIterator[list[TurnEvent] | None]:
        return _follow(self, turn_id, after, heartbeat_s)

    @contextlib.asynccontextmanager
    async def watching(self, turn_id: UUID) -> AsyncIterator[None]:
        self._watchers[turn_id] = self._watchers.get(turn_id, 0) + 1
        try:
            yield
        finally:
            self._watchers[turn_id] -= 1
            if not self._watchers[turn_id]:
                del self._watchers[turn_id]

    async def watchers(self, turn_id: UUID) -> int:
        return self._watchers.get(turn_id, 0)

    def _expire(self) -> None:
        now = time.monotonic()
        for turn_id in [key for key, deadline in self._expiry.items() if deadline <= now]:
            del self._expiry[turn_id]
            self._events.pop(turn_id, None)
            if turn_id not in self._watchers:
                self._pulses.pop(turn_id, None)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


_Entry = tuple[bytes, dict[bytes, bytes]]


def _seq_of(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


class RedisEventLog:
    """Redis Streams, one per turn (``surge:turn:{id}``), entry ids ``{seq}-1`` so that Redis itself
    refuses a second writer's duplicate sequence number.

    Followers in this process wait on an in-process pulse; one watcher task per process multiplexes a
    blocking XREAD over every turn followed here, so a thousand open streams cost one connection.
    """

    # Unfinished turns' logs expire too, in case their writer died: nothing lives forever.
    ACTIVE_TTL_S = 24 * 3600
    WATCHER_BLOCK_MS = 100
    PRESENCE_TTL_S = 45.0

    def __init__(self, redis: aioredis.Redis, *, ttl_s: float, prefix: str = "surge") -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._seq: dict[UUID, int] = {}
        self._pulses: dict[UUID, _Pulse] = {}
        self._followed: dict[UUID, int] = {}  # turn -> followers in this process
        self._positions: dict[UUID, str] = {}  # turn -> last entry id the watcher has seen
        self._registered = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False

    def key(self, turn_id: UUID) -> str:
        return f"{self.prefix}:turn:{turn_id}"

    def pulse(self, turn_id: UUID) -> _Pulse:
        return self._pulses.setdefault(turn_id, _Pulse())

    async def _last_seq(self, turn_id: UUID) -> int:
        last = cast("list[_Entry]", await self.redis.xrevrange(self.key(turn_id), count=1))
        return _seq_of(last[0][0]) if last else 0

    async def append(self, turn_id: UUID, event: str, data: Any) -> TurnEvent:
        if turn_id not in self._seq:
            # Taking over a turn another replica started: continue its numbering.
            self._seq[turn_id] = await self._last_seq(turn_id)
        seq = self._seq[turn_id] + 1
        entry = TurnEvent(seq=seq, event=event, data=encode_data(data))
        key = self.key(turn_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(key, {"e": event, "d": bytes(entry.data)}, id=f"{seq}-1")
            pipe.expire(key, int(self.ttl_s if entry.terminal else self.ACTIVE_TTL_S))
            await pipe.execute()
        self._seq[turn_id] = seq
        if entry.terminal:
            self._seq.pop(turn_id, None)
        self.pulse(turn_id).fire()
        return entry

    async def read(self, turn_id: UUID, after: int = 0) -> list[TurnEvent]:
        rows = cast(
            "list[_Entry]", await self.redis.xrange(self.key(turn_id), min=f"({after}-1" if after else "-")
        )
        return [
            TurnEvent(seq=_seq_of(entry_id), event=fields[b"e"].decode(), data=msgspec.Raw(fields[b"d"]))
            for entry_id, fields in rows
        ]

    def follow(
        self, turn_id: UUID, after: int, *, heartbeat_s: float = HEARTBEAT_S
    ) -> AsyncIterator[list[TurnEvent] | None]:
        return self._registered_follow(turn_id, after, heartbeat_s)

    async def _registered_follow(
        self, turn_id: UUID, after: int, heartbeat_s: float
    ) -> AsyncIterator[list[TurnEvent] | None]:
        self._followed[turn_id] = self._followed.get(turn_id, 0) + 1
        self._positions.setdefault(turn_id, f"{after}-1" if after else "0-0")
        self._registered.set()
        try:
            async for batch in _follow(self, turn_id, after, heartbeat_s):
                yield batch
        finally:
            self._followed[turn_id] -= 1
            if not self._followed[turn_id]:
                del self._followed[turn_id]
                self._positions.pop(turn_id, None)
                if turn_id not in self._seq:
                    self._pulses.pop(turn_id, None)

    async def _watch(self) -> None:
        """Wake local followers of turns written by other replicas."""
        while not self._stopping:
            if not self._positions:
                self._registered.clear()
                await self._registered.wait()
                continue
            streams: dict[Any, Any] = {
                self.key(turn_id): position for turn_id, position in self._positions.items()
            }
            try:
                result = cast(
                    "list[tuple[bytes, list[_Entry]]]",
                    await self.redis.xread(streams, block=self.WATCHER_BLOCK_MS, count=100),
                )
            except RedisError:
                await asyncio.sleep(0.5)
                continue
            for key, entries in result or []:
                turn_id = UUID(key.decode().rsplit(":", 1)[1])
                if turn_id in self._positions and entries:
                    self._positions[turn_id] = entries[-1][0].decode()
                    self.pulse(turn_id).fire()

    def _presence_key(self, turn_id: UUID) -> str:
        return f"{self.prefix}:turn:{turn_id}:watchers"

    @contextlib.asynccontextmanager
    async def watching(self, turn_id: UUID) -> AsyncIterator[None]:
        key, member = self._presence_key(turn_id), uuid.uuid4().hex

        async def refresh() -> None:
            while True:
                await self.redis.zadd(key, {member: time.time() + self.PRESENCE_TTL_S})
                await self.redis.expire(key, int(self.PRESENCE_TTL_S * 2))
                await asyncio.sleep(self.PRESENCE_TTL_S / 3)

        await self.redis.zadd(key, {member: time.time() + self.PRESENCE_TTL_S})
        refresher = asyncio.create_task(refresh())
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(RedisError, asyncio.CancelledError):
                await self.redis.zrem(key, member)

    async def watchers(self, turn_id: UUID) -> int:
        return int(await self.redis.zcount(self._presence_key(turn_id), time.time(), "+inf"))

    async def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch(), name="surge-event-log-watcher")

    async def close(self) -> None:
        # Cancelling a blocking XREAD can wedge redis-py's connection; let it return on its own instead
        # (it blocks for WATCHER_BLOCK_MS at most).
        self._stopping = True
        self._registered.set()
        if self._watcher is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._watcher, 2.0)
