"""The fair queue's order and the degrade ladder's steps, on constructed situations."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from backend.admission.ladder import (
    NORMAL,
    SHED_FREE,
    SHORTER_ANSWERS,
    SIGNUPS_PAUSED,
    THINKING_OFF,
    DegradeLadder,
    degrade,
)
from backend.admission.queue import ModelQueue, Ticket

FREE, PLUS = 2, 1


def ticket(user: uuid.UUID, priority: int, at: float) -> Ticket:
    return Ticket(turn_id=uuid.uuid4(), user_id=user, priority=priority, enqueued_at=at)


async def test_paying_users_come_first_then_the_user_with_fewest_turns_then_age():
    queue = ModelQueue("m")
    busy, idle, payer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    queue.hold(ticket(busy, FREE, 0.0), 0.0)  # busy already has a turn running
    busy_waiting = ticket(busy, FREE, 1.0)
    idle_waiting = ticket(idle, FREE, 2.0)  # younger, but idle has nothing running
    payer_waiting = ticket(payer, PLUS, 3.0)  # youngest, but plus
    for t in (busy_waiting, idle_waiting, payer_waiting):
        queue.enqueue(t)
    assert [queue.position(t) for t in (payer_waiting, idle_waiting, busy_waiting)] == [1, 2, 3]
    granted = queue.grant(slots=3, now=4.0)  # one slot held, two free
    assert granted == [payer_waiting, idle_waiting]
    assert payer_waiting.granted.done() and not busy_waiting.granted.done()
    assert queue.position(busy_waiting) == 1


async def test_age_breaks_ties_and_a_withdrawn_turn_leaves_the_queue():
    queue = ModelQueue("m")
    first, second = ticket(uuid.uuid4(), FREE, 1.0), ticket(uuid.uuid4(), FREE, 2.0)
    queue.enqueue(second)
    queue.enqueue(first)
    assert queue.position(first) == 1 and queue.position(second) == 2
    queue.withdraw(first)
    assert queue.position(first) == 0 and queue.position(second) == 1


async def test_the_wait_estimate_follows_how_long_turns_hold_their_slots():
    queue = ModelQueue("m", mean_hold_s=10.0)
    assert queue.estimated_wait_s(position=4, slots=2) == 20.0
    held = ticket(uuid.uuid4(), FREE, 0.0)
    queue.hold(held, 0.0)
    queue.release(held, 110.0)  # held for 110 s: the mean moves towards it
    assert queue.mean_hold_s == pytest.approx(10.0 + 0.1 * 100.0)
    assert queue.estimated_wait_s(position=1, slots=0) == 0.0


def ladder() -> DegradeLadder:
    return DegradeLadder((0.25, 0.5, 1.0, 2.0), raise_after_s=2.0, lower_after_s=10.0)


def test_the_level_rises_only_after_pressure_lasts():
    steps = ladder()
    assert steps.update(0.6, now=0.0) == NORMAL  # a blip is not a trend
    assert steps.update(0.6, now=1.0) == NORMAL
    assert steps.update(0.6, now=2.0) == THINKING_OFF  # jumps straight to what pressure calls for
    assert steps.update(3.0, now=3.0) == THINKING_OFF
    assert steps.update(3.0, now=5.0) == SHED_FREE


def test_each_level_begins_at_its_threshold():
    steps = ladder()
    assert [steps.called_for(p) for p in (0.0, 0.25, 0.5, 1.0, 2.0, 9.0)] == [0, 1, 2, 3, 4, 4]


def test_the_level_falls_one_step_at_a_time_after_a_quiet_period_and_does_not_flap():
    steps = ladder()
    steps.update(2.5, now=0.0)
    assert steps.update(2.5, now=2.0) == SHED_FREE
    # Just under the level-4 threshold is not quiet enough: the band is half of it.
    assert steps.update(1.5, now=3.0) == SHED_FREE
    assert steps.update(1.5, now=30.0) == SHED_FREE
    # Nor is the shedding level's own band (1.0): it holds until next to nothing is refused, half of the
    # first threshold (0.125).
    assert steps.update(0.4, now=31.0) == SHED_FREE
    assert steps.update(0.4, now=50.0) == SHED_FREE
    assert steps.update(0.1, now=51.0) == SHED_FREE
    assert steps.update(0.1, now=61.0) == SIGNUPS_PAUSED
    # Below the shedding level the band is half of the level's own threshold again (0.5 for level 3).
    assert steps.update(0.4, now=65.0) == SIGNUPS_PAUSED
    assert steps.update(0.4, now=71.0) == THINKING_OFF
    # Pressure returning resets the quiet period.
    assert steps.update(0.3, now=75.0) == THINKING_OFF
    assert steps.update(0.0, now=76.0) == THINKING_OFF
    assert steps.update(0.0, now=86.0) == SHORTER_ANSWERS
    assert steps.update(0.0, now=96.0) == NORMAL


def test_degrade_applies_to_free_users_first_and_to_paying_users_last():
    def plan(level: int, tier: str, thinking: bool = True, optional: bool = True):
        return degrade(
            level,
            tier=tier,
            thinking=thinking,
            thinking_optional=optional,
            max_tokens=8000,
            degraded_max_tokens=1000,
        )

    assert plan(NORMAL, "free").changes == {}
    assert plan(SHORTER_ANSWERS, "free").changes == {"max_tokens": 1000}
    assert plan(SHORTER_ANSWERS, "plus").changes == {}
    assert plan(THINKING_OFF, "free").changes == {"max_tokens": 1000, "thinking": False}
    assert plan(THINKING_OFF, "free", thinking=False).changes == {"max_tokens": 1000}
    # A model that always thinks cannot be switched off.
    assert "thinking" not in plan(THINKING_OFF, "free", optional=False).changes
    assert plan(SIGNUPS_PAUSED, "plus").changes == {}
    assert plan(SHED_FREE, "plus").changes == {"max_tokens": 1000}
    assert plan(SHED_FREE, "admin").changes == {}
    degraded = plan(THINKING_OFF, "free")
    assert (degraded.thinking, degraded.max_tokens) == (False, 1000)


async def test_a_granted_future_wakes_its_waiter():
    queue = ModelQueue("m")
    waiting = ticket(uuid.uuid4(), FREE, 0.0)
    queue.enqueue(waiting)
    waiter = asyncio.ensure_future(asyncio.shield(waiting.granted))
    queue.grant(slots=1, now=1.0)
    await asyncio.wait_for(waiter, 1)
    assert waiting.granted_at == 1.0


def test_the_shed_rate_is_taken_over_the_window_and_over_less_at_first():
    queue = ModelQueue("m")
    queue.shed_since_tick = 6
    queue.measure_shedding(now=1.0, window_s=10.0, interval_s=1.0)
    assert queue.shed_per_s == 6.0  # one second of history so far
    for second in range(2, 20):
        queue.measure_shedding(now=float(second), window_s=10.0, interval_s=1.0)
    assert queue.shed_per_s == 0.0  # the wave has left the window
    queue.shed_since_tick = 3
    queue.measure_shedding(now=20.0, window_s=0.0, interval_s=1.0)  # a window shorter than a measurement
    assert queue.shed_per_s == 3.0
