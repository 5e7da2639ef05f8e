"""The events of a turn's stream (API.md, "The event stream"), shared by SSE and the WebSocket session."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import msgspec

from surge._types import Message, SurgeModel, Turn

__all__ = [
    "ContentEvent",
    "DegradedEvent",
    "DoneEvent",
    "ErrorEvent",
    "QueuedEvent",
    "ReasoningEvent",
    "StartedEvent",
    "StreamEvent",
    "TurnEvent",
]


class _Event(SurgeModel, kw_only=True):
    message_id: str | None = None
    """The assistant message this event belongs to."""
    seq: int | None = None
    """Position in the message's event log (1, 2, 3, ...); ``None`` for ``turn``, which is not logged."""


class TurnEvent(_Event, kw_only=True):
    """First event of a streamed send: the user message and the ``queued`` assistant message."""

    type: Literal["turn"] = "turn"
    user_message: Message
    assistant_message: Message
    ref: str | None = None
    """The ``ref`` of the WebSocket ``send`` this answers (WebSocket only)."""

    @property
    def turn(self) -> Turn:
        return Turn(user_message=self.user_message, assistant_message=self.assistant_message)


class QueuedEvent(_Event, kw_only=True):
    """Waiting for capacity; repeats as the position improves."""

    type: Literal["queued"] = "queued"
    position: int
    estimated_wait_s: float


class StartedEvent(_Event, kw_only=True):
    """Generation began upstream."""

    type: Literal["started"] = "started"
    model: str


class ReasoningEvent(_Event, kw_only=True):
    """Chain-of-thought text (thinking models)."""

    type: Literal["reasoning"] = "reasoning"
    delta: str


class ContentEvent(_Event, kw_only=True):
    """Answer text."""

    type: Literal["content"] = "content"
    delta: str


class DegradedEvent(_Event, kw_only=True):
    """The overload policy changed this turn (thinking off, a shorter answer, ...)."""

    type: Literal["degraded"] = "degraded"
    reason: str
    changes: dict[str, Any] = msgspec.field(default_factory=dict)


class DoneEvent(_Event, kw_only=True):
    """Terminal: the final message with its usage; ``status`` is ``complete`` or ``cancelled``."""

    type: Literal["done"] = "done"
    message: Message


class ErrorEvent(_Event, kw_only=True):
    """Terminal: the turn failed (the assistant message is ``failed``; the user message is kept)."""

    type: Literal["error"] = "error"
    code: str
    message: str
    retry_after_s: float | None = None


StreamEvent: TypeAlias = (
    TurnEvent
    | QueuedEvent
    | StartedEvent
    | ReasoningEvent
    | ContentEvent
    | DegradedEvent
    | DoneEvent
    | ErrorEvent
)

EVENT_TYPES: dict[str, type[StreamEvent]] = {
    "turn": TurnEvent,
    "queued": QueuedEvent,
    "started": StartedEvent,
    "reasoning": ReasoningEvent,
    "content": ContentEvent,
    "degraded": DegradedEvent,
    "done": DoneEvent,
    "error": ErrorEvent,
}

TERMINAL = ("done", "error")


def decode_event(
    name: str, data: bytes | str, *, seq: int | None, message_id: str | None
) -> StreamEvent | None:
    """The typed event named ``name`` with JSON payload ``data``; ``None`` for an event this SDK does not
    know (a newer server's), which the caller skips."""
    event_type = EVENT_TYPES.get(name)
    if event_type is None:
        return None
    event = msgspec.json.decode(data, type=event_type)
    if event.message_id is None and isinstance(event, TurnEvent):
        message_id = message_id or event.assistant_message.id
    return msgspec.structs.replace(event, seq=seq, message_id=message_id or event.message_id)
