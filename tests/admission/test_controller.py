"""The admission controller over a constructed fleet: slots, the queue's events, the maximum wait, the
ladder driven by real queue pressure, overrides, and replicas agreeing through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from backend.admission.board import MemoryBoard, Override, RedisBoard
from backend.admission.controller import AdmissionController, QueueTimeout
from backend.admission.queue import Ticket
from backend.admission.tiers import tier_limits
from backend.errors import Overloaded, SignupsPaused, ValidationFailed
from backend.settings import AdmissionSettings, ModelSpec, TierSettings
from loadtests.redis_keys import drop_prefix
from tests.polling import until
from tests.services import REDIS_URL, redis_available, require

MODEL = ModelSpec(
    id="m", display_name="M", workers=["http://w"], thinking="optional", thinking_switch="thinking"
)


@dataclass
class FakePool:
    """What admission reads from the worker pool: the healthy capacity per model."""

    capacity_by_model: dict[str, int] = field(default_factory=lambda: {"m": 2})

    def capacity(self, model_id: str) -> int:
        return self.capacity_by_model.get(model_id, 0)


def controller(board=None, clock=None, **settings) -> AdmissionController:
    config = {
        "raise_after_s": 0.0,
        "lower_after_s": 0.0,
        "max_queue_wait_s": 5.0,
        "interval_s": 0.05,
        "paid_reserved_share": 0.0,
    }
    config.update(settings)
    return AdmissionController(
        pool=FakePool(),  # type: ignore[arg-type]
        settings=AdmissionSettings(**config),
        board=board or MemoryBoard(),
        replica_id=uuid.uuid4(),
        **({"clock": clock} if clock else {}),
    )


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[int, float]] = []

    async def __call__(self, position: int, wait: float) -> None:
        self.events.append((position, wait))


def slot(admission: AdmissionController, user: uuid.UUID, priority: int = 2, announce=None):
    return admission.slot(
        model_id="m",
        turn_id=uuid.uuid4(),
        user_id=user,
        priority=priority,
        paying=priority < 2,
        announce=announce or Recorder(),
    )


async def hold(
    admission, user, release: asyncio.Event, started: list, name: str, priority: int = 2, announce=None
):
    async with slot(admission, user, priority, announce):
        started.append(name)
        await release.wait()


@dataclass
class queue_is:  # read as a condition: until(queue_is(admission, holding=2, waiting=1))
    """The model's queue holds and waits exactly so many turns."""

    admission: AdmissionController
    holding: int
    waiting: int

    def __call__(self) -> bool:
        queue = self.admission.state().queues.get("m")
        return queue is not None and (queue.holding, queue.waiting) == (self.holding, self.waiting)

    def __repr__(self) -> str:
        queue = self.admission.state().queues.get("m")
        now = (queue.holding, queue.waiting) if queue else None
        return f"(holding, waiting) == {(self.holding, self.waiting)}, now {now}"


async def test_turns_beyond_the_slots_wait_and_are_told_their_place():
    admission = controller()
    release, started = asyncio.Event(), []
    running = [
        asyncio.create_task(hold(admission, uuid.uuid4(), release, started, f"r{i}")) for i in range(2)
    ]
    await until(queue_is(admission, holding=2, waiting=0))
    assert sorted(started) == ["r0", "r1"]
    free_recorder, plus_recorder = Recorder(), Recorder()
    free = asyncio.create_task(
        hold(admission, uuid.uuid4(), asyncio.Event(), started, "free", 2, free_recorder)
    )
    await until(lambda: free_recorder.events, what="the free turn told its place")
    plus = asyncio.create_task(
        hold(admission, uuid.uuid4(), asyncio.Event(), started, "plus", 1, plus_recorder)
    )
    await until(lambda: plus_recorder.events and len(free_recorder.events) == 2, what="both told again")
    assert free_recorder.events[0][0] == 1
    # The plus turn arrived later but goes first; the free turn is told it moved back.
    assert plus_recorder.events == [(1, plus_recorder.events[0][1])]
    assert [position for position, _ in free_recorder.events] == [1, 2]
    assert admission.state().queues["m"].waiting == 2
    release.set()
    await until(lambda: len(started) == 4)
    assert started[2:] == ["plus", "free"]
    for task in (*running, free, plus):
        task.cancel()
    await asyncio.gather(*running, free, plus, return_exceptions=True)
    assert admission.state().queues["m"].holding == 0


async def test_a_turn_that_waits_too_long_is_refused_with_retry_after_and_frees_its_place():
    admission = controller(max_queue_wait_s=0.2, shed_retry_after_s=17)
    release, started = asyncio.Event(), []
    running = [asyncio.create_task(hold(admission, uuid.uuid4(), release, started, str(i))) for i in range(2)]
    await until(queue_is(admission, holding=2, waiting=0))
    with pytest.raises(QueueTimeout) as refused:
        async with slot(admission, uuid.uuid4()):
            pytest.fail("should not have started")
    assert 17 * 0.8 <= refused.value.retry_after_s <= 17 * 1.2
    assert admission.state().queues["m"].waiting == 0
    release.set()
    await asyncio.gather(*running)


async def test_a_cancelled_waiting_turn_leaves_the_queue():
    admission = controller()
    release, started = asyncio.Event(), []
    running = [asyncio.create_task(hold(admission, uuid.uuid4(), release, started, str(i))) for i in range(2)]
    await until(queue_is(admission, holding=2, waiting=0))
    waiting = asyncio.create_task(hold(admission, uuid.uuid4(), asyncio.Event(), started, "w"))
    await until(queue_is(admission, holding=2, waiting=1))
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert admission.state().queues["m"].waiting == 0
    release.set()
    await asyncio.gather(*running)
    assert "w" not in started


async def test_without_healthy_workers_turns_are_not_held_back():
    admission = controller()  # a turn may wait 5 s for a slot
    admission.pool.capacity_by_model["m"] = 0  # type: ignore[attr-defined]
    announce = Recorder()

    async def through() -> tuple[int, int]:
        async with slot(admission, uuid.uuid4(), announce=announce):
            queue = admission.state().queues["m"]
            return queue.holding, queue.waiting

    # At once, holding a place without waiting for one: the runner then reports upstream_unavailable.
    assert await asyncio.wait_for(through(), 1) == (1, 0)
    assert announce.events == [], "never told to wait"
    assert admission.state().queues["m"].holding == 0


async def test_queue_pressure_raises_the_level_and_its_end_lowers_it():
    clock = ManualClock()
    admission = controller(clock=clock, ladder_thresholds="0.5,1,1.5,2", lower_after_s=1.0)
    release, started = asyncio.Event(), []
    tasks = [asyncio.create_task(hold(admission, uuid.uuid4(), release, started, str(i))) for i in range(6)]
    await until(queue_is(admission, holding=2, waiting=4))  # pressure 2
    await admission.tick()
    assert admission.level == 4 and not admission.signups_open
    free, plus = tier_limits(TierSettings(), "free"), tier_limits(TierSettings(), "plus")
    with pytest.raises(Overloaded) as shed:
        admission.plan(free, MODEL, thinking=True, max_tokens=8000)
    assert 24 <= shed.value.retry_after_s <= 36, "30 s give or take a fifth"
    assert admission.plan(plus, MODEL, thinking=True, max_tokens=8000).changes == {"max_tokens": 2048}
    with pytest.raises(SignupsPaused):
        await admission.admit_signup()
    release.set()
    await asyncio.gather(*tasks)
    levels = []
    for _ in range(40):  # the shed turn's demand fades, then one step per quiet second
        clock.now += 1.0
        await admission.tick()
        levels.append(admission.level)
    assert levels[-1] == 0 and admission.signups_open
    steps = [level for i, level in enumerate(levels) if i == 0 or level != levels[i - 1]]
    assert steps == [4, 3, 2, 1, 0], levels


async def test_an_operator_override_wins_until_it_is_lifted():
    admission = controller()
    await admission.set_override(Override(level=2))
    assert admission.level == 2 and admission.signups_open
    plan = admission.plan(tier_limits(TierSettings(), "free"), MODEL, thinking=True, max_tokens=8000)
    assert plan.changes == {"max_tokens": 2048, "thinking": False}
    await admission.set_override(Override(signups_open=False))
    assert admission.level == 0 and not admission.signups_open
    await admission.set_override(Override())
    assert admission.level == 0 and admission.signups_open
    with pytest.raises(ValidationFailed):
        await admission.set_override(Override(level=9))


async def test_replicas_sharing_redis_share_the_level_the_override_and_the_fleet():
    require("Redis", redis_available())
    redis = aioredis.Redis.from_url(REDIS_URL)
    stem = f"test:{uuid.uuid4().hex}"
    prefix = f"{stem}:"
    try:
        one = controller(board=RedisBoard(redis, fresh_s=5, prefix=prefix), ladder_thresholds="0.5,1,1.5,2")
        two = controller(board=RedisBoard(redis, fresh_s=5, prefix=prefix), ladder_thresholds="0.5,1,1.5,2")
        await one.tick()
        await two.tick()
        await one.tick()
        # Two live replicas split the fleet's 2 slots.
        assert one.replicas == two.replicas == 2 and one.slots("m") == 1
        release, started = asyncio.Event(), []
        tasks = [asyncio.create_task(hold(one, uuid.uuid4(), release, started, str(i))) for i in range(3)]
        await until(queue_is(one, holding=1, waiting=2))  # pressure 2
        await one.tick()
        await two.tick()
        assert one.level == 4 and two.level == 4, "replica two applies the level replica one posted"
        assert not two.signups_open
        await two.set_override(Override(level=1, signups_open=True))
        await one.tick()
        assert one.level == 1 and one.signups_open
        await one.set_override(Override())
        await two.tick()
        assert two.level == 4
        release.set()
        await asyncio.gather(*tasks)
        # The levels outlive the replicas by twice the freshness window, then go; the override stays.
        await one.set_override(Override(level=2))
        assert 5_000 < await redis.pttl(f"{prefix}levels") <= 10_000
        assert await redis.pttl(f"{prefix}override") == -1
    finally:
        await drop_prefix(REDIS_URL, stem)
        await redis.aclose()


async def test_slots_kept_for_paying_users_let_their_turns_start_at_once():
    admission = controller(paid_reserved_share=0.25)
    admission.pool.capacity_by_model["m"] = 4  # type: ignore[attr-defined]
    admission.level = 1  # the reserve holds under overload only
    release, started = asyncio.Event(), []
    free = [asyncio.create_task(hold(admission, uuid.uuid4(), release, started, f"f{i}")) for i in range(4)]
    await until(queue_is(admission, holding=3, waiting=1))
    assert sorted(started) == ["f0", "f1", "f2"], "free turns leave the reserved slot alone"
    paid = asyncio.create_task(hold(admission, uuid.uuid4(), release, started, "plus", 1))
    await until(lambda: "plus" in started, within_s=2, what="the paying turn started without waiting")
    assert started[-1] == "plus" and admission.state().queues["m"].waiting == 1
    release.set()
    await asyncio.gather(*free, paid)
    assert sorted(started) == ["f0", "f1", "f2", "f3", "plus"]
    admission.level = 0
    assert admission.reserved(4) == 0, "in normal times free turns may use every slot"


async def test_shedding_does_not_make_the_level_flap():
    """At level 4 free turns are refused, so the queue empties: the level must stay while the crowd is
    still knocking, and fall only once it has gone."""
    clock = ManualClock()
    admission = controller(clock=clock, ladder_thresholds="0.5,1,1.5,2", lower_after_s=5.0)
    admission.ladder.level = admission.level = 4
    for _ in range(2):  # the fleet's two slots are taken: free turns would have to wait
        admission.queue("m").hold(Ticket(uuid.uuid4(), uuid.uuid4(), 2, 0.0), 0.0)
    free = tier_limits(TierSettings(), "free")
    for _ in range(30):  # 30 s of 10 refused turns a second, nothing queued
        clock.now += 1.0
        for _ in range(10):
            with pytest.raises(Overloaded):
                admission.plan(free, MODEL, thinking=True, max_tokens=8000)
        await admission.tick()
        assert admission.level == 4, f"fell to {admission.level} at {clock.now} s with the crowd still there"
    assert admission.state().queues["m"].shed_per_s > 5
    for ticket in list(admission.queue("m").holding.values()):
        admission.queue("m").release(ticket, clock.now)
    plan = admission.plan(free, MODEL, thinking=True, max_tokens=8000)
    assert plan.changes, "with a slot free, a free turn runs even at level 4, degraded"
    for _ in range(60):  # the crowd has gone
        clock.now += 1.0
        await admission.tick()
    assert admission.level == 0


async def test_short_degraded_answers_do_not_hide_the_crowd_still_being_shed():
    """At level 4 answers are short, so each refused turn counts for little pressure: a crowd refused at
    one turn a second with 1 s answers reads as pressure 0.5 (one of two slots) — under level 4's own
    band (1.0), but it must still hold the level: stepping down would let the whole crowd in."""
    clock = ManualClock()
    admission = controller(clock=clock, ladder_thresholds="0.5,1,1.5,2", lower_after_s=5.0)
    admission.ladder.level = admission.level = 4
    queue = admission.queue("m")
    queue.mean_hold_s = 1.0  # degraded answers are short
    for _ in range(2):
        queue.hold(Ticket(uuid.uuid4(), uuid.uuid4(), 2, 0.0), 0.0)
    free = tier_limits(TierSettings(), "free")
    for _ in range(30):
        clock.now += 1.0
        with pytest.raises(Overloaded):
            admission.plan(free, MODEL, thinking=True, max_tokens=8000)
        await admission.tick()
        assert admission.level == 4, (
            f"fell to {admission.level} at {clock.now} s, pressure {admission.pressure()}"
        )
    assert 0.25 < admission.pressure() < 1.0


async def test_a_crowd_told_to_come_back_later_is_remembered_while_it_is_away():
    """Refused clients return after their Retry-After (30 s, give or take a fifth): between two waves
    nobody knocks, yet the crowd has not gone."""
    clock = ManualClock()
    admission = controller(
        clock=clock, ladder_thresholds="0.5,1,1.5,2", lower_after_s=5.0, shed_retry_after_s=30.0
    )
    admission.ladder.level = admission.level = 4
    queue = admission.queue("m")
    queue.mean_hold_s = 1.0
    for _ in range(2):
        queue.hold(Ticket(uuid.uuid4(), uuid.uuid4(), 2, 0.0), 0.0)
    free = tier_limits(TierSettings(), "free")
    for second in range(90):
        clock.now += 1.0
        if second % 30 == 0:  # a wave of 30 refused turns, then 29 quiet seconds
            for _ in range(30):
                with pytest.raises(Overloaded):
                    admission.plan(free, MODEL, thinking=True, max_tokens=8000)
        await admission.tick()
        assert admission.level == 4, f"fell to {admission.level} at {clock.now} s between two waves"
    for _ in range(60):  # the crowd has gone: one window of memory, then a step per quiet period
        clock.now += 1.0
        await admission.tick()
    assert admission.level < 4


async def test_signups_reopen_gradually_while_still_overloaded():
    admission = controller(overloaded_signups_per_min=2)
    for _ in range(5):
        await admission.admit_signup()  # level 0: no ration
    admission.level = 3
    with pytest.raises(SignupsPaused):
        await admission.admit_signup()
    admission.level = 2  # the pause has ended, the overload has not: two a minute come in
    await admission.admit_signup()
    await admission.admit_signup()
    with pytest.raises(SignupsPaused) as rationed:
        await admission.admit_signup()
    assert 24 <= rationed.value.retry_after_s <= 36
    await admission.set_override(Override(signups_open=True))
    admission.level = 2
    await admission.admit_signup()  # the operator opened them: no ration


async def test_a_paying_turn_goes_straight_to_workers_that_preempt_for_it():
    admission = controller()  # two slots
    release, started = asyncio.Event(), []
    free = [asyncio.create_task(hold(admission, uuid.uuid4(), release, started, f"f{i}")) for i in range(3)]
    await until(queue_is(admission, holding=2, waiting=1))
    assert sorted(started) == ["f0", "f1"], "the third free turn waits"

    async def paying_turn() -> None:
        async with admission.slot(
            model_id="m", turn_id=uuid.uuid4(), user_id=uuid.uuid4(), priority=1, paying=True,
            announce=Recorder(), straight_through=True,
        ):  # fmt: skip
            started.append("plus")
            await release.wait()

    paid = asyncio.create_task(paying_turn())
    await until(lambda: "plus" in started, within_s=2, what="the paying turn started without waiting")
    assert admission.state().queues["m"].holding == 3 and admission.state().queues["m"].waiting == 1
    release.set()
    await asyncio.gather(*free, paid)
