"""A turn: one assistant message being produced, what it answers, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from backend.admission.tiers import TierLimits
from backend.chat.layout import Layout
from backend.db import models as m
from backend.inference.wire import Usage
from backend.settings import ModelSpec

UPSTREAM_PRIORITY_STEP = 100


@dataclass(frozen=True, slots=True)
class Turn:
    """An accepted turn: the assistant message to produce and what it answers."""

    message_id: UUID
    user_message_id: UUID
    conversation_id: UUID
    user_id: UUID
    model: ModelSpec
    thinking: bool
    max_tokens: int
    accepted_at: datetime
    attempts: int = 0
    # Place in the admission queue: the user's tier's priority (lower is served first).
    priority: int = 0
    paying: bool = False

    @classmethod
    def from_message(cls, answer: m.Message, *, user_id: UUID, model: ModelSpec, limits: TierLimits) -> Turn:
        """The turn that produces the stored assistant message ``answer`` (accepted, or recovered)."""
        if answer.parent_id is None:
            raise ValueError("an assistant message always answers a user message")
        return cls(
            message_id=answer.id,
            user_message_id=answer.parent_id,
            conversation_id=answer.conversation_id,
            user_id=user_id,
            model=model,
            thinking=bool(answer.thinking),
            max_tokens=answer.max_tokens or model.max_output_tokens,
            accepted_at=answer.created_at,
            attempts=answer.attempts,
            priority=limits.priority,
            paying=limits.paying,
        )

    def upstream_priority(self) -> int | None:
        """The priority sent to SGLang when its workers schedule by it: higher for paying tiers, tiers a
        hundred apart, more than SGLang's default preemption threshold (10), so that a paying turn may
        preempt a free one."""
        if not self.model.priority_scheduling:
            return None
        return -UPSTREAM_PRIORITY_STEP * self.priority

    def template_kwargs(self) -> dict[str, Any]:
        if self.model.thinking == "optional" and self.model.thinking_switch:
            return {self.model.thinking_switch: self.thinking}
        return {}


class TurnFailed(Exception):
    """Why a turn ended in ``failed``: the ``code`` and message of its ``error`` event."""

    def __init__(self, code: str, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    def event_payload(self) -> dict[str, Any]:
        """The ``error`` event's data, the same whether the event is live or replayed from the stored row
        (which keeps the retry hint as a float: a whole number is sent as an integer either way)."""
        payload: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after_s is not None:
            whole = float(self.retry_after_s).is_integer()
            payload["retry_after_s"] = int(self.retry_after_s) if whole else self.retry_after_s
        return payload


Status = Literal["complete", "cancelled", "failed"]


@dataclass(frozen=True, slots=True)
class TurnEnding:
    """How a turn ended and what it produced: everything its final write stores."""

    status: Status
    finish_reason: str
    content: str
    reasoning: str | None
    failure: TurnFailed | None = None
    usage: Usage | None = None
    # Where and when it ran; None leaves what the row holds (a turn ended by someone other than its
    # runner does not know them).
    worker: str | None = None
    attempts: int | None = None
    started_at: datetime | None = None
    first_token_at: datetime | None = None
    # The events of the log before the terminal one (stored, to replay the log exactly later); None when
    # unknown (a turn ended where its log could not be read).
    layout: Layout | None = None
    # Whether checkpoints were written (they are deleted with the final write).
    checkpointed: bool = False

    def row_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "status": self.status,
            "finish_reason": self.finish_reason,
            "content": self.content,
            "reasoning": self.reasoning,
            "event_layout": self.layout.encode() if self.layout is not None else None,
        }
        for name in ("worker", "attempts", "started_at", "first_token_at"):
            if (value := getattr(self, name)) is not None:
                values[name] = value
        if self.usage is not None:
            values.update(
                prompt_tokens=self.usage.prompt_tokens,
                completion_tokens=self.usage.completion_tokens,
                reasoning_tokens=self.usage.reasoning_tokens,
                cached_tokens=self.usage.cached_tokens,
            )
        if self.failure is not None:
            values.update(
                error_code=self.failure.code,
                error_message=self.failure.message,
                error_retry_after_s=self.failure.retry_after_s,
            )
        return values


@dataclass(frozen=True, slots=True)
class FinishedTurn:
    """What a finisher is told about a turn whose end is being stored (inside that transaction)."""

    message_id: UUID
    conversation_id: UUID
    user_id: UUID
    status: Status
    # Whether any client was following the turn's stream at that moment (on any replica).
    attached: bool
