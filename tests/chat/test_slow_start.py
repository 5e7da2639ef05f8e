"""The warning for a turn slow to reach its worker, and the split of where the time went."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from backend.chat.runner import Generation, Turn, TurnRunner
from backend.settings import ModelSpec


def generation(accepted: datetime) -> Generation:
    turn = Turn(
        message_id=uuid.uuid4(),
        user_message_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        model=ModelSpec(id="m", display_name="M", workers=["http://w"]),
        thinking=False,
        max_tokens=100,
        accepted_at=accepted,
    )
    return Generation(turn=turn)


def test_a_turn_slow_to_reach_its_worker_is_logged_with_each_step(caplog):
    accepted = datetime(2026, 1, 1, tzinfo=UTC)
    slow = generation(accepted)
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
    queued = generation(accepted)
    base = accepted.timestamp()
    queued.marks = {"task": base + 0.01, "slot": base + 5.0, "branch": base + 5.02}
    queued.started_at = accepted + timedelta(seconds=5.05)
    with caplog.at_level(logging.WARNING, logger="surge.chat"):
        TurnRunner._warn_if_slow_start(queued)
    assert not caplog.records
