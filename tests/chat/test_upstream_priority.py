"""What a turn tells SGLang about its priority, for workers that schedule by it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from backend.chat.runner import Turn
from backend.inference.client import ChatRequest
from backend.settings import ModelSpec


def turn(priority: int, *, scheduling: bool) -> Turn:
    return Turn(
        message_id=uuid.uuid4(),
        user_message_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        model=ModelSpec(id="m", display_name="M", workers=["http://w"], priority_scheduling=scheduling),
        thinking=False,
        max_tokens=100,
        accepted_at=datetime.now(UTC),
        priority=priority,
    )


def test_paying_tiers_get_a_higher_priority_by_more_than_sglangs_preemption_threshold():
    free, plus, admin = (turn(p, scheduling=True).upstream_priority() for p in (2, 1, 0))
    assert free is not None and plus is not None and admin is not None
    assert admin > plus > free
    assert plus - free > 10, "SGLang preempts only beyond --priority-scheduling-preemption-threshold (10)"


def test_no_priority_is_sent_to_workers_that_do_not_schedule_by_it():
    assert turn(1, scheduling=False).upstream_priority() is None
    request = ChatRequest(model="m", messages=[], rid="r", max_tokens=10)
    assert "priority" not in request.payload(stream=True)
    request = ChatRequest(model="m", messages=[], rid="r", max_tokens=10, priority=-100)
    assert request.payload(stream=True)["priority"] == -100
