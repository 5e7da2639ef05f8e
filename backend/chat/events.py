"""The events of one turn's stream (API.md, "The event stream") and their SSE / WebSocket encodings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal
from uuid import UUID

import msgspec

EventName = Literal["queued", "started", "reasoning", "content", "degraded", "done", "error"]
TERMINAL: frozenset[str] = frozenset({"done", "error"})

_encode = msgspec.json.Encoder().encode


class TurnEvent(msgspec.Struct, frozen=True):
    """One entry of a turn's event log; ``data`` is kept as encoded JSON so it is serialised once."""

    seq: int
    event: str
    data: msgspec.Raw

    @property
    def terminal(self) -> bool:
        return self.event in TERMINAL

    def sse(self) -> bytes:
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (self.seq, self.event.encode(), bytes(self.data))

    def payload(self) -> Any:
        return msgspec.json.decode(self.data)


def text_from_events(events: Iterable[TurnEvent]) -> tuple[str, str | None]:
    """The answer and the reasoning (None if there was none) that a log's deltas add up to."""
    content: list[str] = []
    reasoning: list[str] = []
    for event in events:
        if event.event == "content":
            content.append(event.payload()["delta"])
        elif event.event == "reasoning":
            reasoning.append(event.payload()["delta"])
    return "".join(content), "".join(reasoning) or None


def encode_data(data: Any) -> msgspec.Raw:
    return msgspec.Raw(_encode(data))


class WsFrame(msgspec.Struct, omit_defaults=True):
    """A server frame of ``/v1/ws``: an event of one turn, or a reply to the client."""

    type: str
    data: msgspec.Raw | dict[str, Any]
    message_id: UUID | None = None
    seq: int | None = None
    ref: str | None = None


def ws_frame(message_id: UUID, event: TurnEvent) -> bytes:
    return _encode(WsFrame(type=event.event, message_id=message_id, seq=event.seq, data=event.data))


def sse_comment(text: str) -> bytes:
    return f": {text}\n\n".encode()


def sse_event(name: str, data: Any) -> bytes:
    """An event outside the replayable log (the ``turn`` event that opens a ``stream: true`` POST)."""
    return b"event: %s\ndata: %s\n\n" % (name.encode(), _encode(data))
