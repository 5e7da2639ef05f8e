"""The rolling window: what it counts, and when usage leaves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.admission.quota import check_turn_allowed, measure
from backend.admission.tiers import tier_limits
from backend.db import models as m
from backend.errors import QuotaExceeded, RateLimited
from backend.settings import TierSettings

LIMITS = tier_limits(TierSettings(window_s=3600, free_messages=3, free_tokens=1000), "free")


async def seed(sessions, answers: list[tuple[timedelta, str, int]]) -> m.User:
    """A user with one conversation and an answer per (age, status, completion tokens)."""
    now = datetime.now(UTC)
    async with sessions() as session:
        user = m.User(email=f"{now.timestamp()}@example.com")
        session.add(user)
        await session.flush()
        conversation = m.Conversation(user_id=user.id, model="m", activity_at=now)
        session.add(conversation)
        await session.flush()
        for age, status, tokens in answers:
            session.add(
                m.Message(
                    conversation_id=conversation.id,
                    role="assistant",
                    status=status,
                    completion_tokens=tokens,
                    created_at=now - age,
                )
            )
        await session.commit()
        return user


async def test_usage_counts_the_window_only_and_frees_with_its_oldest_turn(sessions):
    user = await seed(
        sessions,
        [
            (timedelta(hours=2), "complete", 500),  # before the window: not counted
            (timedelta(minutes=50), "complete", 300),
            (timedelta(minutes=20), "failed", 0),  # a failed turn costs nothing
            (timedelta(minutes=10), "streaming", 100),
        ],
    )
    now = datetime.now(UTC)
    async with sessions() as session:
        usage = await measure(session, user.id, LIMITS, now=now)
    assert (usage.messages, usage.tokens, usage.concurrent_turns) == (2, 400, 1)
    # The turn sent 50 minutes ago leaves the window 10 minutes from now.
    assert abs((usage.resets_at - (now + timedelta(minutes=10))).total_seconds()) < 2
    check_turn_allowed(usage, now=now)  # 2 of 3 messages, 400 of 1000 tokens, 1 of 2 at once

    async with sessions() as session:
        later = await measure(session, user.id, LIMITS, now=now + timedelta(minutes=11))
    assert (later.messages, later.tokens) == (1, 100)


async def test_a_spent_quota_refuses_until_resets_at(sessions):
    user = await seed(sessions, [(timedelta(minutes=m_), "complete", 10) for m_ in (30, 20, 10)])
    now = datetime.now(UTC)
    async with sessions() as session:
        usage = await measure(session, user.id, LIMITS, now=now)
    with pytest.raises(QuotaExceeded) as refused:
        check_turn_allowed(usage, now=now)
    assert refused.value.extra["resets_at"] == usage.resets_at
    assert 29 * 60 <= refused.value.retry_after_s <= 30 * 60 + 1


async def test_the_turns_at_once_cap_is_a_rate_limit_of_seconds(sessions):
    user = await seed(sessions, [(timedelta(minutes=1), "streaming", 0), (timedelta(minutes=1), "queued", 0)])
    async with sessions() as session:
        usage = await measure(session, user.id, LIMITS)
    with pytest.raises(RateLimited) as refused:
        check_turn_allowed(usage)
    assert refused.value.retry_after_s == 5
