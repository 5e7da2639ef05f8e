"""Each turn's event log: written by the process generating the turn, read from any offset by any process.

Guarantees (API.md): sequence numbers 1, 2, 3, ... per turn; a reader resuming after ``k`` gets exactly
``k+1, k+2, ...``; the log ends with one ``done`` or ``error``.

The process generating a turn keeps its log in memory (``LiveTurn``) while it streams. SGLang sends one
chunk per token; the runner adds each delta without encoding anything, and once per coalescing window
(``SURGE_STREAM_COALESCE_MS``) every turn's new text is sealed into one event per run, handed to the
readers in this process and, with Redis, published for the other replicas in one pipeline for all turns.
Other events (``queued``, ``started``, ``degraded``, the terminal one) are sealed and published at once.
A turn may start generating while its acceptance is still being committed (``pending``): its log fills
but nothing goes out until the commit succeeds (``confirm``); if it fails, the log is dropped unseen.

Two implementations of one interface: in memory (the embedded single process) and Redis Streams (several
replicas: one stream per turn, ``{prefix}:turn:{id}``, entry ids ``{seq}-1`` so that Redis itself refuses
a duplicate). Redis is a copy of the stream, not its only one: the writer keeps the whole log until its
terminal event is published, republishes what Redis lost, and the turn's final row stores the log's
layout (``backend.chat.layout``), so a log that expired or vanished is replayed exactly from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, cast, runtime_checkable
from uuid import UUID

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from backend.chat.events import TurnEvent
from backend.chat.layout import KIND_OF
from backend.chat.live import LiveTurn
from backend.observability import metrics

logger = logging.getLogger("surge.chat")

# A follower that has seen nothing new for this long gets ``None`` so that it can send a heartbeat.
HEARTBEAT_S = 15.0
# Default coalescing window: deltas arriving within it go out as one event (see the README's measurements).
COALESCE_S = 0.025
# Waiting readers are woken this often to see whether their heartbeat is due.
TICK_S = 0.5


class LogUnavailable(Exception):
    """The shared log cannot be reached (Redis is down): the reader should fall back to the database."""


# Checkable: Litestar checks each dependency a route declares against its annotation.
@runtime_checkable
class EventLog(Protocol):
    def writer(self, turn_id: UUID, prefix: Sequence[TurnEvent] = (), *, pending: bool = False) -> LiveTurn:
        """The log of a turn this process generates (made on first use; ``prefix``: the events another
        process wrote before, for a turn taken over). ``pending``: the turn's acceptance is not committed
        yet; nothing of its log goes out until ``confirm`` (or ever, after ``discard``)."""
        ...

    def confirm(self, live: LiveTurn) -> None:
        """The pending turn is stored: publish and show what its log holds, and from now on as it comes."""
        ...

    def discard(self, live: LiveTurn) -> None:
        """The pending turn was never stored: drop its log without anything of it going out."""
        ...

    def note(self, live: LiveTurn, event: str, data: Any) -> TurnEvent:
        """Add a non-terminal event to a turn generated here without waiting for its publication: it goes
        out with the next one, before any delta added after it."""
        ...

    def delta(self, live: LiveTurn, kind: int, text: str) -> None:
        """Add a delta (the hot path: no I/O); it goes out with the coalescing window."""
        ...

    def seal(self, live: LiveTurn) -> None:
        """Make a turn's pending deltas events now (before its end is stored)."""
        ...

    async def append(self, turn_id: UUID, event: str, data: Any, *, after: int | None = None) -> TurnEvent:
        """Add an event at once (single writer per turn). ``after``: the last seq another process wrote,
        when taking over a turn this process did not start. A terminal event ends the turn's live log."""
        ...

    async def read(self, turn_id: UUID, after: int = 0) -> list[TurnEvent]:
        """The events after ``after`` that exist now (empty if the log is unknown or gone)."""
        ...

    def follow(
        self, turn_id: UUID, after: int, *, heartbeat_s: float = HEARTBEAT_S
    ) -> AsyncIterator[list[TurnEvent] | None]:
        """Replay after ``after``, then follow live until the terminal event, in batches of whatever is
        there at each wake-up; ``None`` means "idle" (time for a heartbeat). Raises ``LogUnavailable``
        when the shared log cannot be reached."""
        ...

    def live(self, turn_id: UUID) -> LiveTurn | None:
        """The live log, if this process generates the turn."""
        ...

    def watching(self, turn_id: UUID) -> contextlib.AbstractAsyncContextManager[None]:
        """Count a client as attached to the turn's stream while inside this block (any replica)."""
        ...

    async def watchers(self, turn_id: UUID) -> int:
        """Clients attached to the turn's stream right now, on every replica."""
        ...

    @property
    def durable(self) -> bool:
        """Whether the log outlives this process (Redis, reachable): else turns are checkpointed."""
        ...

    def unpublished(self) -> list[LiveTurn]:
        """Live turns whose latest events other processes cannot read yet (none without Redis)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class _Writers:
    """The live logs of the turns this process generates, and the coalescing window they share."""

    def __init__(self, coalesce_s: float) -> None:
        self.coalesce_s = coalesce_s
        self._live: dict[UUID, LiveTurn] = {}
        self._due: list[LiveTurn] = []
        self._window: asyncio.TimerHandle | None = None
        self._local_watchers: dict[UUID, int] = {}
        self._ticker: asyncio.Task[None] | None = None

    def writer(self, turn_id: UUID, prefix: Sequence[TurnEvent] = (), *, pending: bool = False) -> LiveTurn:
        live = self._live.get(turn_id)
        if live is None:
            live = self._live[turn_id] = LiveTurn(turn_id)
            live.seed(list(prefix))
            live.pending = pending
        return live

    def confirm(self, live: LiveTurn) -> None:
        live.pending = False
        if live.seal():
            self._sealed([live])

    def discard(self, live: LiveTurn) -> None:
        # It stays pending: a seal still scheduled for it finds nothing to send.
        self._retire(live)

    def note(self, live: LiveTurn, event: str, data: Any) -> TurnEvent:
        entry = live.add_other(event, data)
        if not live.pending:
            self._sealed([live])
        return entry

    def live(self, turn_id: UUID) -> LiveTurn | None:
        return self._live.get(turn_id)

    def delta(self, live: LiveTurn, kind: int, text: str) -> None:
        if live.add(kind, text):
            if not live.runs:
                # A turn's first delta goes out at once: the window would add to its time to first token.
                asyncio.get_running_loop().call_soon(self.seal, live)
                return
            self._due.append(live)
            if self._window is None:
                self._window = asyncio.get_running_loop().call_later(self.coalesce_s, self._close_window)

    def seal(self, live: LiveTurn) -> None:
        """Seal a turn's open deltas now, without waiting for the window (the turn is ending)."""
        if live.seal() and not live.pending:
            self._sealed([live])

    def _close_window(self) -> None:
        self._window = None
        due, self._due = self._due, []
        sealed = [live for live in due if live.seal() and not live.pending]
        if sealed:
            metrics.STREAM_FLUSHES.inc()
            self._sealed(sealed)

    def _sealed(self, lives: list[LiveTurn]) -> None:
        """These turns have new events: show them to readers (Redis publishes them first)."""
        for live in lives:
            live.reveal()

    async def _add(
        self, turn_id: UUID, event: str, data: Any, after: int | None
    ) -> tuple[LiveTurn, TurnEvent]:
        live = self._live.get(turn_id)
        if live is None:
            live = self._live[turn_id] = LiveTurn(turn_id, after=await self._last_seq(turn_id, after))
        kind = KIND_OF.get(event)
        if kind is not None and isinstance(data, dict) and set(data) == {"delta"}:
            live.add(kind, data["delta"])
            live.seal()
            entry = live.events_after(live.sealed - 1, live.sealed)[0]
        else:
            entry = live.add_other(event, data)
        return live, entry

    async def _last_seq(self, turn_id: UUID, after: int | None) -> int:
        return after or 0

    def _retire(self, live: LiveTurn) -> None:
        """The turn ended: readers already following keep their reference; new ones read elsewhere."""
        if self._live.get(live.turn_id) is live:
            del self._live[live.turn_id]
        with contextlib.suppress(ValueError):
            self._due.remove(live)

    async def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    def _pulsing(self) -> list[LiveTurn | _Feed]:
        """What readers here wait on: every one is woken at each tick."""
        return [live for live in self._live.values() if live.followers]

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="surge-event-log-ticks")

    async def _tick(self) -> None:
        """Wake every waiting reader once per TICK_S, so that each can tell whether it has been idle for
        its heartbeat: cheaper than a timer per wait (readers wait once per event)."""
        while True:
            await asyncio.sleep(TICK_S)
            for source in self._pulsing():
                source.wake()

    async def _follow_live(
        self, live: LiveTurn, after: int, heartbeat_s: float
    ) -> AsyncIterator[list[TurnEvent] | None]:
        """Follow a turn generated here: straight from its live log, no I/O."""
        self._ensure_ticker()
        loop = asyncio.get_running_loop()
        position, idle_since = after, loop.time()
        live.followers += 1
        try:
            while True:
                pulse = live.pulse
                events = live.events_after(position)
                if events:
                    end = next((i for i, event in enumerate(events) if event.terminal), None)
                    if end is not None:
                        yield events[: end + 1]
                        return
                    yield events
                    position, idle_since = events[-1].seq, loop.time()
                    continue
                await pulse.wait()
                if loop.time() - idle_since >= heartbeat_s:
                    yield None
                    idle_since = loop.time()
        finally:
            live.followers -= 1

    @contextlib.asynccontextmanager
    async def _watching_here(self, turn_id: UUID) -> AsyncIterator[None]:
        self._local_watchers[turn_id] = self._local_watchers.get(turn_id, 0) + 1
        try:
            yield
        finally:
            self._local_watchers[turn_id] -= 1
            if not self._local_watchers[turn_id]:
                del self._local_watchers[turn_id]


class MemoryEventLog(_Writers):
    """Everything in this process: right for the embedded default, which refuses a second process. A
    turn's log lives while the turn does; a finished turn is replayed from its stored row."""

    def __init__(self, *, coalesce_s: float = COALESCE_S) -> None:
        super().__init__(coalesce_s)

    async def append(self, turn_id: UUID, event: str, data: Any, *, after: int | None = None) -> TurnEvent:
        live, entry = await self._add(turn_id, event, data, after)
        if not live.pending:
            live.reveal()
        if entry.terminal:
            self._retire(live)
        return entry

    async def read(self, turn_id: UUID, after: int = 0) -> list[TurnEvent]:
        live = self._live.get(turn_id)
        return live.events_after(after) if live is not None else []

    def follow(
        self, turn_id: UUID, after: int, *, heartbeat_s: float = HEARTBEAT_S
    ) -> AsyncIterator[list[TurnEvent] | None]:
        return self._follow(turn_id, after, heartbeat_s)

    async def _follow(
        self, turn_id: UUID, after: int, heartbeat_s: float
    ) -> AsyncIterator[list[TurnEvent] | None]:
        live = self._live.get(turn_id)
        if live is None:
            # Not generated here (finished, or not started yet): the caller reads the stored row.
            while True:
                yield None
                await asyncio.sleep(heartbeat_s)
        async for batch in self._follow_live(live, after, heartbeat_s):
            yield batch

    def watching(self, turn_id: UUID) -> contextlib.AbstractAsyncContextManager[None]:
        return self._watching_here(turn_id)

    async def watchers(self, turn_id: UUID) -> int:
        return self._local_watchers.get(turn_id, 0)

    @property
    def durable(self) -> bool:
        return False

    def unpublished(self) -> list[LiveTurn]:
        return []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        if self._window is not None:
            self._window.cancel()
            self._close_window()
        await self._stop_ticker()


_Entry = tuple[bytes, dict[bytes, bytes]]

# A publication of every turn's new events in one round trip and one command. ARGV: the TTLs of a stream
# while its turn runs and after it ended, then per event its stream's key, entry id, name, data and flags
# (FIRST: it may create the stream; ENDS: the terminal event). One result per event: ADDED, GONE (the
# stream is not there although this is not its first event: Redis lost it, the writer sends it whole
# again), ALREADY (an entry with this id is there: a retry after a lost reply), or REFUSED. The keys are
# arguments, so Surge's Redis is one node (or a primary with replicas), not a Cluster.
_PUBLISH = """
local out = {}
for i = 3, #ARGV, 5 do
  local key, flags = ARGV[i], tonumber(ARGV[i + 4])
  local first, ends = flags % 2 == 1, flags >= 2
  local added
  if first then
    added = redis.pcall('XADD', key, ARGV[i + 1], 'e', ARGV[i + 2], 'd', ARGV[i + 3])
  else
    added = redis.pcall('XADD', key, 'NOMKSTREAM', ARGV[i + 1], 'e', ARGV[i + 2], 'd', ARGV[i + 3])
  end
  if type(added) == 'table' and added.err then
    if string.find(added.err, 'equal or smaller', 1, true) then out[#out + 1] = 2 else out[#out + 1] = 3 end
  elseif not added then
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
    if ends then
      redis.call('EXPIRE', key, ARGV[2])
    elseif first then
      redis.call('EXPIRE', key, ARGV[1])
    end
  end
end
return out
"""
ADDED, GONE, ALREADY, REFUSED = 0, 1, 2, 3
FIRST, ENDS = 1, 2


@functools.lru_cache(maxsize=1 << 14)
def _stream_key(prefix: str, turn_id: UUID) -> str:
    """A turn's stream key, formatted once per turn rather than at each publication and each read: with
    1,000 streams open, formatting the UUID took 2.5 % of the process's CPU."""
    return f"{prefix}:turn:{turn_id}"


def _seq_of(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


def _event_of(entry_id: bytes, fields: dict[bytes, bytes]) -> TurnEvent:
    return TurnEvent(seq=_seq_of(entry_id), event=fields[b"e"].decode(), data=msgspec.Raw(fields[b"d"]))


class _Feed:
    """What the watcher has read of a turn written by another process, for this process's readers."""

    __slots__ = ("events", "followers", "position", "pulse")

    def __init__(self, position: int) -> None:
        self.position = position  # the last seq the watcher has read
        self.events: list[TurnEvent] = []
        self.followers: dict[int, int] = {}  # follower token -> its position
        self.pulse = asyncio.Event()

    def add(self, events: list[TurnEvent]) -> None:
        fresh = [event for event in events if event.seq > self.position]
        if not fresh:
            return
        self.events.extend(fresh)
        self.position = fresh[-1].seq
        # Keep only what some follower has not read yet.
        oldest = min(self.followers.values(), default=self.position)
        self.events = [event for event in self.events if event.seq > oldest]
        self.wake()

    def wake(self) -> None:
        self.pulse.set()
        self.pulse = asyncio.Event()

    def after(self, position: int) -> list[TurnEvent] | None:
        """The events after ``position``; None if the feed does not reach back that far."""
        if position >= self.position:
            return []
        if not self.events or self.events[0].seq > position + 1:
            return None
        return [event for event in self.events if event.seq > position]


class RedisEventLog(_Writers):
    """Redis Streams, one per turn. The writer publishes each coalescing window's events for every turn in
    one pipeline; a reader in another process is fed by one watcher task per process that multiplexes a
    blocking XREAD over every turn followed there, so a thousand open streams cost one connection."""

    # Unfinished turns' logs expire too, in case their writer died: nothing lives forever.
    ACTIVE_TTL_S = 24 * 3600
    WATCHER_BLOCK_MS = 100
    PRESENCE_TTL_S = 45.0
    # A publication that takes longer than this is given up on and retried (Redis is unwell).
    PUBLISH_TIMEOUT_S = 2.0
    RETRY_S = 0.5
    # Finished turns whose end could not be published yet are kept at most this many (their rows are
    # final; readers elsewhere find the end in the database).
    MAX_UNPUBLISHED_ENDED = 10_000

    def __init__(
        self, redis: aioredis.Redis, *, ttl_s: float, prefix: str = "surge", coalesce_s: float = COALESCE_S
    ) -> None:
        super().__init__(coalesce_s)
        self.redis = redis
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._publishing = asyncio.Lock()
        # Turns sealed since the publisher last looked, and the publisher (``_sealed``).
        self._sealed_turns: list[LiveTurn] = []
        self._publisher: asyncio.Task[None] | None = None
        self._publish_script = redis.register_script(_PUBLISH)
        # Turns with events Redis does not have yet (retried while Redis is away), and ended ones.
        self._behind: dict[UUID, LiveTurn] = {}
        self._retry: asyncio.Task[None] | None = None
        self.healthy = True
        self._error: BaseException | None = None
        self._feeds: dict[UUID, _Feed] = {}
        self._registered = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._presence: dict[UUID, dict[str, float]] = {}
        self._presence_task: asyncio.Task[None] | None = None
        self._tokens = iter(range(1 << 62))
        self._stopping = False

    def key(self, turn_id: UUID) -> str:
        return _stream_key(self.prefix, turn_id)

    # --- writing ---
    async def append(self, turn_id: UUID, event: str, data: Any, *, after: int | None = None) -> TurnEvent:
        live, entry = await self._add(turn_id, event, data, after)
        if entry.terminal:
            self._retire(live)
        if not live.pending:
            await self._publish([live])
        return entry

    async def _last_seq(self, turn_id: UUID, after: int | None) -> int:
        """Taking over a turn another process started: continue its numbering."""
        if after is not None:
            return after
        last = cast("list[_Entry]", await self.redis.xrevrange(self.key(turn_id), count=1))
        return _seq_of(last[0][0]) if last else 0

    def _sealed(self, lives: list[LiveTurn]) -> None:
        """Queue these turns for the publisher, started if it is not running. One publisher, not a task per
        sealing: under load, tasks queued on the publishing lock each cost a pass of the event loop even
        when an earlier publication already sent their events, and a turn's first token waited seconds
        behind them. The publisher sends whatever was sealed meanwhile in its next round trip instead."""
        self._sealed_turns.extend(lives)
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.get_running_loop().create_task(
                self._publish_sealed(), name="surge-event-log-publisher"
            )
            self._publisher.add_done_callback(_log_failure)

    async def _publish_sealed(self) -> None:
        while self._sealed_turns:
            lives, self._sealed_turns = list(dict.fromkeys(self._sealed_turns)), []
            await self._publish(lives)

    async def _publish(self, lives: list[LiveTurn]) -> None:
        """Send what Redis does not have of these turns, in order, in one pipeline, then show it to this
        process's readers: an event they see is one that survives this process dying. While Redis is
        away the turns wait in ``_behind`` (a retry loop sends them when it is back) and the readers here
        are shown the events anyway: the stream goes on, and the runner checkpoints to the database."""
        async with self._publishing:
            for live in lives:
                if live.published < live.sealed:
                    self._behind[live.turn_id] = live
            if self.healthy and not await self._send_behind():
                self._went_down()
            elif not self.healthy:
                self._start_retry()
            for live in lives:
                live.reveal()

    async def _send_behind(self) -> bool:
        """Publish every event Redis lacks, for every turn, in one call of ``_PUBLISH``; False if Redis
        failed. (Events sealed meanwhile are left to the publication their sealing queued.)"""
        for _ in range(3):  # a pass may find streams Redis lost (a restart): the next one sends them whole
            batch = [live for live in self._behind.values() if live.published < live.sealed]
            if not batch:
                self._behind.clear()
                return True
            plan: list[tuple[LiveTurn, int]] = []
            args: list[Any] = [int(self.ACTIVE_TTL_S), int(self.ttl_s)]
            for live in batch:
                key = self.key(live.turn_id)
                for event in live.events_after(live.published, live.sealed):
                    flags = (FIRST if event.seq == live.layout.first_seq else 0) | (
                        ENDS if event.terminal else 0
                    )
                    args += (key, f"{event.seq}-1", event.event, bytes(event.data), flags)
                    plan.append((live, event.seq))
            try:
                async with asyncio.timeout(self.PUBLISH_TIMEOUT_S):
                    results = await self._publish_script(args=args, client=self.redis)
            except (RedisError, OSError, TimeoutError) as exc:
                self._error = exc
                return False
            lost = False
            for (live, seq), result in zip(plan, results, strict=True):
                if result == GONE:
                    # The stream is gone (Redis restarted and lost it): publish it again from the start.
                    live.published, lost = live.layout.first_seq - 1, True
                elif result in (ADDED, ALREADY):
                    # (ALREADY: Redis had it; a retry after a reply that was lost.)
                    live.published = max(live.published, seq)
                else:
                    self._error = RuntimeError(f"Redis refused an event of turn {live.turn_id}")
                    return False
            if lost:
                metrics.EVENT_LOG_REPUBLISHED.inc()
            for live in batch:
                if live.published >= live.sealed:
                    self._behind.pop(live.turn_id, None)
            if not lost:
                return True
        self._error = RuntimeError("Redis keeps losing streams")
        return False

    def _went_down(self) -> None:
        if self.healthy:
            logger.warning(
                "event log: Redis unreachable; streams go on here and are kept until it is back",
                extra={"error": type(self._error).__name__},
            )
        self.healthy = False
        metrics.EVENT_LOG_FAILURES.inc()
        self._trim_ended()
        self._start_retry()

    def _trim_ended(self) -> None:
        ended = [live for live in self._behind.values() if live.terminal]
        for live in ended[: max(0, len(ended) - self.MAX_UNPUBLISHED_ENDED)]:
            self._behind.pop(live.turn_id, None)
            metrics.EVENT_LOG_DROPPED.inc()

    def _start_retry(self) -> None:
        if self._retry is None or self._retry.done():
            self._retry = asyncio.get_running_loop().create_task(
                self._retry_loop(), name="surge-event-log-retry"
            )

    async def _retry_loop(self) -> None:
        while self._behind and not self._stopping:
            await asyncio.sleep(self.RETRY_S)
            async with self._publishing:
                if not await self._send_behind():
                    self._trim_ended()
                    continue
                if not self.healthy:
                    self.healthy = True
                    logger.warning("event log: Redis reachable again; the streams it missed are published")

    def unpublished(self) -> list[LiveTurn]:
        return [live for live in self._behind.values() if live.published < live.sealed]

    @property
    def durable(self) -> bool:
        return self.healthy

    # --- reading ---
    async def read(self, turn_id: UUID, after: int = 0) -> list[TurnEvent]:
        live = self._live.get(turn_id)
        if live is not None:
            return live.events_after(after)
        try:
            rows = cast(
                "list[_Entry]",
                await self.redis.xrange(self.key(turn_id), min=f"({after}-1" if after else "-"),
            )
        except RedisError as exc:
            raise LogUnavailable(str(exc)) from exc
        return [_event_of(entry_id, fields) for entry_id, fields in rows]

    def follow(
        self, turn_id: UUID, after: int, *, heartbeat_s: float = HEARTBEAT_S
    ) -> AsyncIterator[list[TurnEvent] | None]:
        live = self._live.get(turn_id)
        if live is not None:
            return self._follow_live(live, after, heartbeat_s)
        return self._follow_remote(turn_id, after, heartbeat_s)

    async def _follow_remote(
        self, turn_id: UUID, after: int, heartbeat_s: float
    ) -> AsyncIterator[list[TurnEvent] | None]:
        feed = self._feeds.get(turn_id)
        if feed is None:
            feed = self._feeds[turn_id] = _Feed(after)
        token = next(self._tokens)
        self._ensure_ticker()
        loop = asyncio.get_running_loop()
        position, idle_since = after, loop.time()
        feed.followers[token] = position
        self._registered.set()
        try:
            while True:
                pulse = feed.pulse
                events = feed.after(position)
                if events is None:
                    events = await self.read(turn_id, position)  # the feed started later: read directly
                if events:
                    end = next((i for i, event in enumerate(events) if event.terminal), None)
                    if end is not None:
                        yield events[: end + 1]
                        return
                    yield events
                    position = feed.followers[token] = events[-1].seq
                    idle_since = loop.time()
                    continue
                await pulse.wait()
                if loop.time() - idle_since >= heartbeat_s:
                    if not self._watcher_healthy:
                        raise LogUnavailable("the event log watcher cannot reach Redis")
                    yield None
                    idle_since = loop.time()
        finally:
            del feed.followers[token]
            if not feed.followers:
                self._feeds.pop(turn_id, None)

    _watcher_healthy = True

    def _pulsing(self) -> list[LiveTurn | _Feed]:
        return [*super()._pulsing(), *(feed for feed in self._feeds.values() if feed.followers)]

    async def _watch(self) -> None:
        """Feed this process's readers of turns written by other processes."""
        while not self._stopping:
            if not self._feeds:
                self._registered.clear()
                await self._registered.wait()
                continue
            streams: dict[Any, Any] = {
                self.key(turn_id): f"{feed.position}-1" for turn_id, feed in self._feeds.items()
            }
            try:
                result = cast(
                    "list[tuple[bytes, list[_Entry]]]",
                    await self.redis.xread(streams, block=self.WATCHER_BLOCK_MS, count=1000),
                )
                self._watcher_healthy = True
            except (RedisError, OSError):
                self._watcher_healthy = False
                await asyncio.sleep(0.5)
                continue
            for key, entries in result or []:
                feed = self._feeds.get(UUID(key.decode().rsplit(":", 1)[1]))
                if feed is not None and entries:
                    feed.add([_event_of(entry_id, fields) for entry_id, fields in entries])

    # --- who is watching ---
    def _presence_key(self, turn_id: UUID) -> str:
        return f"{self.prefix}:turn:{turn_id}:watchers"

    @contextlib.asynccontextmanager
    async def watching(self, turn_id: UUID) -> AsyncIterator[None]:
        """A reader in the process generating the turn is counted here alone (only that process asks);
        elsewhere it is registered in Redis, refreshed by one task for all of them."""
        if turn_id in self._live:
            async with self._watching_here(turn_id):
                yield
            return
        member = uuid.uuid4().hex
        members = self._presence.setdefault(turn_id, {})
        members[member] = time.time()
        with contextlib.suppress(RedisError, OSError):
            await self.redis.zadd(self._presence_key(turn_id), {member: time.time() + self.PRESENCE_TTL_S})
            await self.redis.expire(self._presence_key(turn_id), int(self.PRESENCE_TTL_S * 2))
        try:
            yield
        finally:
            members.pop(member, None)
            if not members:
                self._presence.pop(turn_id, None)
            with contextlib.suppress(RedisError, OSError):
                await self.redis.zrem(self._presence_key(turn_id), member)

    async def _refresh_presence(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.PRESENCE_TTL_S / 3)
            until = time.time() + self.PRESENCE_TTL_S
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for turn_id, members in self._presence.items():
                        pipe.zadd(self._presence_key(turn_id), dict.fromkeys(members, until))
                        pipe.expire(self._presence_key(turn_id), int(self.PRESENCE_TTL_S * 2))
                    await pipe.execute()
            except (RedisError, OSError):
                continue

    async def watchers(self, turn_id: UUID) -> int:
        here = self._local_watchers.get(turn_id, 0)
        if here:
            return here
        return int(await self.redis.zcount(self._presence_key(turn_id), time.time(), "+inf"))

    async def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch(), name="surge-event-log-watcher")
        self._presence_task = asyncio.create_task(self._refresh_presence(), name="surge-event-log-presence")

    async def close(self) -> None:
        if self._window is not None:
            self._window.cancel()
            self._close_window()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.PUBLISH_TIMEOUT_S):
                if self._publisher is not None:
                    await asyncio.wait([self._publisher])  # its failure is logged, not raised here
                await self._publish(list(self._behind.values()))
        # Cancelling a blocking XREAD can wedge redis-py's connection; let it return on its own instead
        # (it blocks for WATCHER_BLOCK_MS at most).
        self._stopping = True
        self._registered.set()
        await self._stop_ticker()
        for task in (self._presence_task, self._retry):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._watcher is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._watcher, 2.0)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("publishing events failed", exc_info=task.exception())
