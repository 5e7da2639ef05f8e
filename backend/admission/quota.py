"""Usage per rolling window, and the quotas and concurrency cap of a user's tier.

Usage is read from the messages themselves, so it cannot drift from what was served: a turn counts
once accepted (a send or a regeneration) unless it failed, and its output tokens (reasoning included)
count once it finished. Only conversations active within the window are looked at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import BindParameter, Select, and_, bindparam, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from backend.admission.tiers import TierLimits
from backend.db import models as m
from backend.errors import QuotaExceeded, RateLimited

# A concurrency refusal is over when one of the user's turns ends: seconds, not the quota window.
CONCURRENCY_RETRY_AFTER_S = 5


@dataclass(frozen=True, slots=True)
class Usage:
    limits: TierLimits
    messages: int
    tokens: int
    concurrent_turns: int
    # When the oldest usage still counted leaves the window (now, if nothing is counted).
    resets_at: datetime

    @property
    def messages_left(self) -> int | None:
        return None if self.limits.messages is None else max(0, self.limits.messages - self.messages)

    @property
    def tokens_left(self) -> int | None:
        return None if self.limits.tokens is None else max(0, self.limits.tokens - self.tokens)


def _usage_statement() -> Select[Any]:
    """Messages, tokens, oldest counted and turns running in the window, turns and API requests alike, for
    ``:user_id`` since ``:since``: one statement, built once (see ``_USAGE``)."""
    user_id: BindParameter[UUID] = bindparam("user_id")
    since: BindParameter[datetime] = bindparam("since")
    counted = and_(m.Message.created_at >= since, m.Message.status != "failed")
    active = m.Message.status.in_(m.ACTIVE_STATUSES)
    # One aggregate for both the window and the turns running: a turn still running was created
    # recently, so its conversation is active within the window too.
    turns = (
        select(
            func.count(m.Message.id).filter(counted).label("messages"),
            func.coalesce(func.sum(m.Message.completion_tokens).filter(counted), 0).label("tokens"),
            func.min(m.Message.created_at).filter(counted).label("oldest"),
            func.count(m.Message.id).filter(active).label("active"),
        )
        .join(m.Conversation, m.Conversation.id == m.Message.conversation_id)
        .where(
            m.Conversation.user_id == user_id,
            # A conversation's activity_at is its newest message: older conversations cannot contribute.
            m.Conversation.activity_at >= since,
            m.Message.role == "assistant",
            or_(m.Message.created_at >= since, active),
        )
        .subquery("turns")
    )
    # Requests of the OpenAI-compatible API in the window count like turns (a request is a turn that
    # stores no conversation). Their rows are written when they end; the ones still running are held to
    # the turns-at-once cap by the API itself.
    api_counted = m.ApiUsage.status != "failed"
    api = (
        select(
            func.count(m.ApiUsage.id).filter(api_counted).label("messages"),
            func.coalesce(func.sum(m.ApiUsage.completion_tokens).filter(api_counted), 0).label("tokens"),
            func.min(m.ApiUsage.created_at).filter(api_counted).label("oldest"),
        )
        .where(m.ApiUsage.user_id == user_id, m.ApiUsage.created_at >= since)
        .subquery("api")
    )
    return select(turns, api).select_from(turns.join(api, true()))


# This runs for every turn accepted. Building it per call (and computing its cache key) cost about as much
# CPU as running it, 1.1 ms of a turn's; built once, SQLAlchemy memoizes its cache key and compiled form.
_USAGE = _usage_statement()


async def measure(
    session: AsyncSession, user_id: UUID, limits: TierLimits, *, now: datetime | None = None
) -> Usage:
    now = now or datetime.now(UTC)
    since = now - timedelta(seconds=limits.window_s)
    row = (await session.execute(_USAGE, {"user_id": user_id, "since": since})).one()
    messages, tokens, turns_oldest, active_turns, api_requests, api_tokens, api_oldest = row
    oldest = min((_aware(at) for at in (turns_oldest, api_oldest) if at is not None), default=None)
    resets_at = oldest + timedelta(seconds=limits.window_s) if oldest is not None else now
    return Usage(
        limits=limits,
        messages=int(messages or 0) + int(api_requests or 0),
        tokens=int(tokens or 0) + int(api_tokens or 0),
        concurrent_turns=int(active_turns or 0),
        resets_at=resets_at,
    )


def _aware(at: datetime) -> datetime:
    # SQLite hands aggregates back without the type's zone.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def check_turn_allowed(usage: Usage, *, now: datetime | None = None) -> None:
    """Raise 429 when one more turn would exceed the tier's quota or its turns-at-once cap."""
    now = now or datetime.now(UTC)
    retry_after = max(1, math.ceil((usage.resets_at - now).total_seconds()))
    if usage.messages_left == 0:
        raise QuotaExceeded(
            f"The {usage.limits.tier} tier allows {usage.limits.messages} messages per "
            f"{_hours(usage.limits.window_s)}.",
            resets_at=usage.resets_at,
            retry_after_s=retry_after,
        )
    if usage.tokens_left == 0:
        raise QuotaExceeded(
            f"The {usage.limits.tier} tier allows {usage.limits.tokens} answer tokens per "
            f"{_hours(usage.limits.window_s)}.",
            resets_at=usage.resets_at,
            retry_after_s=retry_after,
        )
    if usage.concurrent_turns >= usage.limits.concurrent_turns:
        raise RateLimited(
            f"At most {usage.limits.concurrent_turns} answers can be generated at once; "
            "wait for one to finish.",
            retry_after_s=CONCURRENCY_RETRY_AFTER_S,
        )


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:g} hours" if seconds >= 3600 else f"{seconds} seconds"
