"""Serving a turn's event log as Server-Sent Events: replay after ``seq``, then follow until the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar.response import Stream

from backend.chat.event_log import EventLog
from backend.chat.events import TurnEvent, encode_data, sse_comment, sse_event
from backend.conversations.schemas import message_view
from backend.db import models as m
from backend.observability import metrics

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # Proxies (nginx) must pass each event on as it comes instead of buffering the response.
    "X-Accel-Buffering": "no",
}


def compact_log(message: m.Message) -> list[TurnEvent]:
    """A finished turn whose event log has expired, replayed from the database: ``started``, the whole
    reasoning, the whole content, and the terminal event."""
    view = message_view(message)
    events: list[tuple[str, Any]] = [("started", {"model": message.model})]
    if message.reasoning:
        events.append(("reasoning", {"delta": message.reasoning}))
    if message.content:
        events.append(("content", {"delta": message.content}))
    if message.status == "failed":
        events.append(
            ("error", {"code": message.error_code or "internal", "message": message.error_message or ""})
        )
    else:
        events.append(("done", {"message": msgspec.to_builtins(view)}))
    return [
        TurnEvent(seq=index, event=name, data=encode_data(data))
        for index, (name, data) in enumerate(events, 1)
    ]


async def turn_events(
    event_log: EventLog, message: m.Message, after: int, *, transport: str = "sse"
) -> AsyncIterator[list[TurnEvent] | None]:
    """Batches of events after ``after`` until the terminal one; ``None`` while idle (heartbeat time)."""
    metrics.ACTIVE_STREAMS.labels(transport).inc()
    try:
        async with event_log.watching(message.id):
            if message.status not in ("queued", "streaming") and not await event_log.read(message.id, 0):
                replay = compact_log(message)
                if after >= len(replay):
                    # The client saw more of the live log than the compact one holds: it still gets its end.
                    terminal = replay[-1]
                    replay = [TurnEvent(seq=after + 1, event=terminal.event, data=terminal.data)]
                else:
                    replay = replay[after:]
                yield replay
                return
            async for batch in event_log.follow(message.id, after):
                yield batch
    finally:
        metrics.ACTIVE_STREAMS.labels(transport).dec()


PING = sse_comment("ping")


async def sse_body(
    event_log: EventLog, message: m.Message, after: int, opening: tuple[str, Any] | None = None
) -> AsyncIterator[bytes]:
    if opening is not None:
        yield sse_event(*opening)
    async for batch in turn_events(event_log, message, after):
        yield PING if batch is None else b"".join(event.sse() for event in batch)


def sse_response(
    event_log: EventLog, message: m.Message, after: int, opening: tuple[str, Any] | None = None
) -> Stream:
    return Stream(
        sse_body(event_log, message, after, opening),
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
