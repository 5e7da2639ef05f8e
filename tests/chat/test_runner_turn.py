"""The runner's per-turn pieces without a fleet: the priority a turn sends to SGLang, and the warning for
a turn slow to reach its worker with the split of where the time went."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from backend.chat.live import LiveTurn
from backend.chat.runner import Generation, TurnRunner
from backend.chat.turn import Turn
from backend.inference.client import ChatRequest
from backend.settings import ModelSpec


def make_turn(*, priority: int = 0, scheduling: bool = False, accepted: datetime | None = None) -> Turn:
    return Turn(
        message_id=uuid.uuid4(),
        user_message_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        model=ModelSpec(id="m", display_name="M", workers=["http://w"], priority_scheduling=scheduling),
        thinking=False,
        max_tokens=100,
        accepted_at=accepted or datetime.now(UTC),
        priority=priority,
    )


# --- the priority sent upstream ---
def test_paying_tiers_get_a_higher_priority_by_more_than_sglangs_preemption_threshold():
    free, plus, admin = (make_turn(priority=p, scheduling=True).upstream_priority() for p in (2, 1, 0))
    assert free is not None and plus is not None and admin is not None
    assert admin > plus > free
    assert plus - free > 10, "SGLang preempts only beyond --priority-scheduling-preemption-threshold (10)"


def test_no_priority_is_sent_to_workers_that_do_not_schedule_by_it():
    assert make_turn(priority=1, scheduling=False).upstream_priority() is None
    request = ChatRequest(model="m", messages=[], rid="r", max_tokens=10)
    assert "priority" not in request.payload(stream=True)
    request = ChatRequest(model="m", messages=[], rid="r", max_tokens=10, priority=-100)
    assert request.payload(stream=True)["priority"] == -100


# --- the slow-start warning ---
def test_a_turn_slow_to_reach_its_worker_is_logged_with_each_step(caplog):
    accepted = datetime(2026, 1, 1, tzinfo=UTC)
    slow = Generation(turn=(turn := make_turn(accepted=accepted)), live=LiveTurn(turn.message_id))
    base = accepted.timestamp()
    slow.marks = {"task": base + 0.1, "slot": base + 0.2, "branch": base + 1.7}
    slow.started_at = accepted + timedelta(seconds=1.8)
    with caplog.at_level(logging.WARNING, logger="surge.chat"):
        TurnRunner._warn_if_slow_start(slow)
    (record,) = caplog.records
    assert record.getMessage() == "turn slow to reach a worker"
    assert (record.task_s, record.slot_s, record.branch_s, record.route_s) == (0.1, 0.1, 1.5, 0.1)


def test_waiting_in_the_fair_queue_is_not_a_slow_start(caplog):
    accepted = datetime(2026, 1, 1, tzinfo=UTC)
    queued = Generation(turn=(turn := make_turn(accepted=accepted)), live=LiveTurn(turn.message_id))
    base = accepted.timestamp()
    queued.marks = {"task": base + 0.01, "slot": base + 5.0, "branch": base + 5.02}
    queued.started_at = accepted + timedelta(seconds=5.05)
    with caplog.at_level(logging.WARNING, logger="surge.chat"):
        TurnRunner._warn_if_slow_start(queued)
    assert not caplog.records
