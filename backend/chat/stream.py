"""Serving a turn's event log to a reader (SSE or WebSocket): replay after ``seq``, then follow until the
end — from the live log in the process generating the turn, from Redis elsewhere, and from the database
when the turn has ended or the shared log cannot say (Redis unreachable, or its copy lost). Every stream
ends with exactly one ``done`` or ``error``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from litestar.response import Stream

from backend.admission.slots import Slot, UserSlots
from backend.chat.event_log import EventLog, LogUnavailable
from backend.chat.events import TurnEvent, sse_comment, sse_event
from backend.chat.store import TurnStore
from backend.db import models as m
from backend.observability import metrics

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # Proxies (nginx) must pass each event on as it comes instead of buffering the response.
    "X-Accel-Buffering": "no",
}
# An idle reader looks at the stored row this often (and is sent a ping): a turn whose end could not reach
# the shared log still ends for it.
CHECK_S = 5.0
# How often a reader that lost the shared log reads the stored row instead.
POLL_S = 1.0


async def turn_events(
    event_log: EventLog, store: TurnStore, message: m.Message, after: int, *, transport: str = "sse"
) -> AsyncIterator[list[TurnEvent] | None]:
    """Batches of events after ``after`` until the terminal one; ``None`` while idle (heartbeat time)."""
    metrics.ACTIVE_STREAMS.labels(transport).inc()
    try:
        async with event_log.watching(message.id):
            if message.status not in m.ACTIVE_STATUSES and event_log.live(message.id) is None:
                # Ended: the stored row replays its log exactly (the shared copy may have expired).
                yield await _stored_events(store, message.id, after)
                return
            async for batch in _follow(event_log, store, message.id, after):
                yield batch
    finally:
        metrics.ACTIVE_STREAMS.labels(transport).dec()


async def _stored_events(store: TurnStore, turn_id: Any, after: int) -> list[TurnEvent]:
    stored = await store.stored_log(turn_id)
    return stored.events(after) if stored is not None else []


async def _follow(
    event_log: EventLog, store: TurnStore, turn_id: Any, after: int
) -> AsyncIterator[list[TurnEvent] | None]:
    position = after
    while True:
        try:
            async for batch in event_log.follow(turn_id, position, heartbeat_s=CHECK_S):
                if batch is None:
                    stored = await store.stored_log(turn_id)
                    if stored is not None and stored.ended:
                        yield stored.events(position)  # its end never reached the shared log
                        return
                    yield None
                    continue
                yield batch
                position = batch[-1].seq
            return
        except LogUnavailable:
            metrics.STREAM_FALLBACKS.inc()
        # The shared log is out of reach: follow the stored row (the writer checkpoints meanwhile) until
        # the turn ends or the log is back.
        async for batch in _poll_stored(store, turn_id, position):
            if batch is None:
                break  # time to try the shared log again
            yield batch
            position = batch[-1].seq
            if batch[-1].terminal:
                return


async def _poll_stored(store: TurnStore, turn_id: Any, after: int) -> AsyncIterator[list[TurnEvent] | None]:
    """Events as the database has them, polled; ``None`` every few seconds so the caller may go back to
    the shared log."""
    position = after
    for _ in range(int(CHECK_S / POLL_S)):
        stored = await store.stored_log(turn_id)
        events = stored.events(position) if stored is not None else []
        if events:
            yield events
            position = events[-1].seq
            if events[-1].terminal:
                return
        await asyncio.sleep(POLL_S)
    yield None


PING = sse_comment("ping")


class TurnStreams:
    """What readers of turns use: the event log, the stored rows behind it, and each user's cap on open
    event streams."""

    def __init__(self, event_log: EventLog, store: TurnStore, slots: UserSlots) -> None:
        self.event_log = event_log
        self.store = store
        self.slots = slots

    def events(
        self, message: m.Message, after: int, *, transport: str = "sse"
    ) -> AsyncIterator[list[TurnEvent] | None]:
        return turn_events(self.event_log, self.store, message, after, transport=transport)

    async def _sse(
        self, message: m.Message, after: int, opening: tuple[str, Any] | None, slot: Slot
    ) -> AsyncIterator[bytes]:
        try:
            if opening is not None:
                yield sse_event(*opening)
            async for batch in self.events(message, after):
                yield PING if batch is None else b"".join(event.sse() for event in batch)
        finally:
            slot.release()

    def sse(
        self, message: m.Message, after: int, *, slot: Slot, opening: tuple[str, Any] | None = None
    ) -> Stream:
        """The answer's events as ``text/event-stream``, holding ``slot`` (one of the user's open streams,
        taken from ``self.slots`` before anything was accepted, so that a refusal is a plain 429) until the
        stream ends."""
        body = self._sse(message, after, opening, slot)
        slot.release_with(body)
        return Stream(
            body,
            media_type="text/event-stream",
            headers=SSE_HEADERS,
            # Explicit: a handler's default status (202 for a send) must not leak onto its stream.
            status_code=200,
        )


def parse_after(after: int | None, last_event_id: str | None) -> int:
    """``?after=`` wins over the ``Last-Event-ID`` header a browser's EventSource sends on reconnect."""
    if after is not None:
        return max(0, after)
    if last_event_id and last_event_id.strip().isdigit():
        return int(last_event_id.strip())
    return 0
