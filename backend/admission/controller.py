"""Admission: which turns start now, which wait, in what order, and how the service degrades.

Every turn asks for a slot before it goes upstream. A model's slots are the running capacity of its
healthy workers (``max_running_requests`` each), shared evenly among the live replicas; turns beyond
that wait here, in the fair queue, rather than in SGLang's FCFS queue where tiers cannot be told apart.
A turn that waits longer than the maximum fails with ``overloaded`` and a Retry-After.

Once a second the controller measures queue pressure, moves the degrade ladder, posts its level on the
board shared with the other replicas, and applies the highest level posted (or the operator's override).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from uuid import UUID

from backend.admission.board import BoardView, OverloadBoard, Override
from backend.admission.ladder import MAX_LEVEL, SHED_FREE, SIGNUPS_PAUSED, DegradeLadder, TurnPlan, degrade
from backend.admission.queue import ModelQueue, Ticket
from backend.admission.ratelimit import MemoryRateLimiter, RateLimit, RateLimiter
from backend.admission.schemas import AdmissionState, QueueView
from backend.admission.tiers import TierLimits
from backend.errors import Overloaded, SignupsPaused, ValidationFailed
from backend.inference.pool import WorkerPool
from backend.observability import metrics
from backend.periodic import Periodic
from backend.settings import AdmissionSettings, ModelSpec

logger = logging.getLogger("surge.admission")

RETRY_JITTER = 0.2

# Announces a waiting turn's place: (position, estimated wait in seconds).
Announce = Callable[[int, float], Awaitable[None]]


class QueueTimeout(Exception):
    """The turn waited the maximum time without a slot."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("waited too long for capacity")
        self.retry_after_s = retry_after_s


class AdmissionController:
    def __init__(
        self,
        *,
        pool: WorkerPool,
        settings: AdmissionSettings,
        board: OverloadBoard,
        replica_id: UUID,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.board = board
        # Shared with the other replicas (Redis) so that the reopening rate is the fleet's, not each one's.
        self.limiter = limiter or MemoryRateLimiter()
        self.replica_id = replica_id
        self.clock = clock
        self.ladder = DegradeLadder(settings.thresholds(), settings.raise_after_s, settings.lower_after_s)
        self.queues: dict[str, ModelQueue] = {}
        self.replicas = 1
        self.level = 0
        self.override = Override()
        self._ticker = Periodic(
            "surge-admission",
            settings.interval_s,
            self.tick,
            logger=logger,
            failure="admission tick failed; retrying next interval",
        )

    # --- the overload state every replica applies ---
    @property
    def signups_open(self) -> bool:
        if self.override.signups_open is not None:
            return self.override.signups_open
        return self.level < SIGNUPS_PAUSED

    def retry_after_s(self) -> int:
        """When a refused client should come back: the setting, give or take a fifth, so that a crowd
        refused in the same second does not return in the same second."""
        base = self.settings.shed_retry_after_s
        return max(1, round(base * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)))

    async def admit_signup(self) -> None:
        """Let a new account in, or refuse it with ``signups_paused``: always while paused (level 3 and
        up, or the operator's word), and beyond ``overloaded_signups_per_min`` while still overloaded
        below that. A pause holds back a crowd that all comes back within one Retry-After of its end;
        let in at once, it sent the spike's level from 2 back to 4 within seconds (every new account
        opens a conversation straight away)."""
        if not self.signups_open:
            metrics.ADMISSION_DECISIONS.labels("", "rejected", "signups_paused").inc()
            raise SignupsPaused(retry_after_s=self.retry_after_s())
        if self.level == 0 or self.override.signups_open:
            return
        rule = RateLimit("signups_overloaded", self.settings.overloaded_signups_per_min, 60)
        if not (await self.limiter.hit(rule, "fleet")).allowed:
            metrics.ADMISSION_DECISIONS.labels("", "rejected", "signups_reopening").inc()
            raise SignupsPaused(retry_after_s=self.retry_after_s())

    def plan(self, limits: TierLimits, model: ModelSpec, *, thinking: bool, max_tokens: int) -> TurnPlan:
        """Admit (with the level's changes) or shed a new turn of ``limits.tier``.

        Shedding refuses only the free turns that would have to wait: while a slot is free for them they
        still run, so the fleet stays busy and the level can see when the crowd thins out."""
        if self.would_shed(limits, model.id):
            raise self.shed(model.id)
        plan = degrade(
            self.level,
            tier=limits.tier,
            thinking=thinking,
            thinking_optional=model.thinking == "optional",
            max_tokens=max_tokens,
            degraded_max_tokens=self.settings.degraded_max_tokens,
        )
        if plan.changes:
            metrics.ADMISSION_DECISIONS.labels(model.id, "degraded", plan.reason).inc()
        return plan

    def would_shed(self, limits: TierLimits, model_id: str) -> bool:
        """Whether a new turn of this tier would be refused now (level 4, free, no slot free for it)."""
        return self.level >= SHED_FREE and limits.tier == "free" and not self.room_for_free(model_id)

    def shed(self, model_id: str) -> Overloaded:
        """Count one refused turn (its demand keeps the level up) and give the error to answer with."""
        metrics.ADMISSION_DECISIONS.labels(model_id, "shed", f"overload_level_{self.level}").inc()
        self.queue(model_id).shed_since_tick += 1
        return Overloaded(
            "Demand is very high right now; free accounts can send again shortly.",
            retry_after_s=self.retry_after_s(),
        )

    async def set_override(self, override: Override) -> None:
        if override.level is not None and not 0 <= override.level <= MAX_LEVEL:
            raise ValidationFailed(
                f"level must be between 0 and {MAX_LEVEL}", fields={"level": f"0-{MAX_LEVEL} or null"}
            )
        await self.board.set_override(override)
        await self.tick()

    # --- slots ---
    def slots(self, model_id: str) -> int:
        capacity = self.pool.capacity(model_id)
        return math.ceil(capacity / max(1, self.replicas)) if capacity else 0

    def room_for_free(self, model_id: str) -> bool:
        queue, slots = self.queue(model_id), self.slots(model_id)
        return not queue.waiting and queue.has_room(paying=False, slots=slots, reserved=self.reserved(slots))

    def reserved(self, slots: int) -> int:
        """Slots free turns may not take. Only under overload (level 1 and up): in normal times paying
        users are not waiting for anything, and an idle reserve would make free users queue for nothing."""
        if self.level == 0:
            return 0
        return int(slots * self.settings.paid_reserved_share)

    def queue(self, model_id: str) -> ModelQueue:
        queue = self.queues.get(model_id)
        if queue is None:
            queue = self.queues[model_id] = ModelQueue(model_id)
        return queue

    @asynccontextmanager
    async def slot(
        self,
        *,
        model_id: str,
        turn_id: UUID,
        user_id: UUID,
        priority: int,
        paying: bool,
        announce: Announce,
        straight_through: bool = False,
    ) -> AsyncIterator[None]:
        """Hold one of the model's slots for the body; wait in the fair queue for it if need be."""
        queue, now = self.queue(model_id), self.clock()
        ticket = Ticket(turn_id=turn_id, user_id=user_id, priority=priority, enqueued_at=now, paying=paying)
        slots = self.slots(model_id)
        if slots == 0 or straight_through:
            # No healthy worker at all: let the turn through to report upstream_unavailable at once.
            # Or a turn the workers will make room for themselves (a paying turn on workers that
            # preempt for priority): waiting here would only delay it.
            queue.hold(ticket, now)
        else:
            # In line behind whoever waits already; straight through if it is first and a slot is free.
            queue.enqueue(ticket)
            self._grant(queue)
        if ticket.granted.done():
            metrics.ADMISSION_DECISIONS.labels(model_id, "admitted", "capacity").inc()
            metrics.QUEUE_WAIT.observe(0.0)
        else:
            metrics.ADMISSION_DECISIONS.labels(model_id, "queued", "fleet_busy").inc()
            metrics.QUEUE_LENGTH.labels(model_id).set(len(queue.waiting))
            await self._wait(queue, ticket, announce)
        try:
            yield
        finally:
            queue.release(ticket, self.clock())
            self._grant(queue)
            metrics.QUEUE_LENGTH.labels(model_id).set(len(queue.waiting))

    def _grant(self, queue: ModelQueue) -> None:
        slots = self.slots(queue.model_id)
        queue.grant(slots, self.clock(), self.reserved(slots))

    async def _wait(self, queue: ModelQueue, ticket: Ticket, announce: Announce) -> None:
        deadline = ticket.enqueued_at + self.settings.max_queue_wait_s
        announced = 0
        try:
            while not ticket.granted.done():
                position = queue.position(ticket)
                if position != announced:
                    announced = position
                    await announce(position, queue.estimated_wait_s(position, self.slots(queue.model_id)))
                remaining = deadline - self.clock()
                if remaining <= 0:
                    raise QueueTimeout(self.retry_after_s())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.shield(ticket.granted), min(remaining, self.settings.interval_s)
                    )
        except BaseException as exc:
            if ticket.granted.done():
                # Granted in the same instant it gave up: hand the slot on.
                queue.release(ticket, self.clock())
                self._grant(queue)
            else:
                queue.withdraw(ticket)
            metrics.QUEUE_LENGTH.labels(queue.model_id).set(len(queue.waiting))
            waited = self.clock() - ticket.enqueued_at
            metrics.QUEUE_WAIT.observe(waited)
            if isinstance(exc, QueueTimeout):
                metrics.ADMISSION_DECISIONS.labels(queue.model_id, "shed", "max_wait").inc()
                queue.shed_since_tick += 1
            raise
        metrics.QUEUE_WAIT.observe(self.clock() - ticket.enqueued_at)
        metrics.ADMISSION_DECISIONS.labels(queue.model_id, "admitted", "dequeued").inc()

    # --- the periodic measurement ---
    async def start(self) -> None:
        self._ticker.start()

    async def close(self) -> None:
        await self._ticker.stop()

    def pressure(self) -> float:
        """The most demand waiting for a model (queued, or held off by shedding), over its slots.

        Counting shed turns keeps the ladder from flapping: shedding empties the queue, and a level that
        looked only at the queue would fall at once and let the same crowd back in."""
        worst = 0.0
        for model_id, queue in self.queues.items():
            demand = queue.demand()
            if demand > 0:
                worst = max(worst, demand / max(1, self.slots(model_id)))
        return worst

    async def tick(self) -> None:
        now = self.clock()
        # Shed demand is remembered for as long as a refused client may stay away.
        window = self.settings.shed_retry_after_s * (1 + RETRY_JITTER)
        for queue in self.queues.values():
            queue.measure_shedding(now, window, self.settings.interval_s)
        own = self.ladder.update(self.pressure(), now)
        view: BoardView | None = None
        try:
            view = await self.board.exchange(self.replica_id, own)
        except Exception as exc:  # Redis down: keep deciding on this replica's own pressure
            logger.warning("overload board unavailable", extra={"error": type(exc).__name__})
        if view is not None:
            self.override = view.override
            self.replicas = max(1, len(view.levels))
            automatic = max([own, *view.levels.values()])
        else:
            automatic = own
        previous = self.level
        self.level = self.override.level if self.override.level is not None else automatic
        if self.level != previous:
            logger.warning(
                "degrade level changed",
                extra={"from": previous, "to": self.level, "pressure": round(self.pressure(), 2)},
            )
        metrics.DEGRADE_LEVEL.set(self.level)
        for model_id, queue in self.queues.items():
            # Capacity may have grown (a worker joined or recovered): let waiting turns in.
            self._grant(queue)
            metrics.QUEUE_LENGTH.labels(model_id).set(len(queue.waiting))

    def state(self) -> AdmissionState:
        now = self.clock()
        return AdmissionState(
            degrade_level=self.level,
            automatic_level=self.ladder.level,
            override_level=self.override.level,
            signups_open=self.signups_open,
            signups_override=self.override.signups_open,
            pressure=round(self.pressure(), 3),
            replicas=self.replicas,
            queues={
                model_id: QueueView(
                    waiting=len(queue.waiting),
                    holding=len(queue.holding),
                    slots=self.slots(model_id),
                    oldest_wait_s=round(queue.oldest_wait_s(now), 1),
                    mean_hold_s=round(queue.mean_hold_s, 1),
                    shed_per_s=round(queue.shed_per_s, 2),
                )
                for model_id, queue in self.queues.items()
            },
        )
