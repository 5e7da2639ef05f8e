"""The push dispatcher, one per backend process: finished answers in the outbox become one push per
device, claimed by one dispatcher at a time, sent through FCM, retried, expired or given up.

Each pass, in its own short transactions:

1. **expand**: take outbox rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer) and,
   in the same transaction that deletes them, add a delivery per device of the user. A delivery is
   unique per (message, device), so an answer enqueued twice still reaches each device once.
2. **claim**: mark due deliveries as this dispatcher's until ``now + claim_ttl``, and commit. A
   dispatcher that dies after claiming leaves claims that lapse; another dispatcher then takes them.
3. **send**: skip what expired or whose device moved to another account, hold back what exceeds the
   per-device rate limit, send the rest in one FCM batch.
4. **record**: every answer from FCM is written back only while the claim is still ours.

The one window left is a crash after FCM accepted a push and before step 4 commits: that push is sent
again when the claim lapses. Its collapse key (Android) and collapse id (APNs) are the conversation's,
so the second copy replaces the first on the phone instead of adding a notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.db import models as m
from backend.db.base import new_id, utcnow
from backend.observability.metrics import (
    PUSH_AUTH_ERRORS,
    PUSH_BATCH_SECONDS,
    PUSH_DEFERRED,
    PUSH_DROPPED,
    PUSH_OUTBOX_BACKLOG,
    PUSH_RETRIES,
    PUSH_SENDS,
    PUSH_TOKENS_DELETED,
)
from backend.push.fcm import Outcome, Push, PushSender, SendResult, notification_text
from backend.settings import PushSettings

logger = logging.getLogger("surge.push")

RATE_WINDOW = timedelta(minutes=10)
# Finished deliveries are kept a day (the rate limit and duplicate suppression look back minutes).
KEEP_FINISHED = timedelta(days=1)
PRUNE_EVERY = timedelta(hours=1)

D = m.PushDelivery
# A delivery this dispatcher is done with, for now or for good, is no longer claimed.
_RELEASED: dict[str, Any] = {"claimed_by": None, "claim_expires_at": None}


@dataclass(frozen=True, slots=True)
class _Claimed:
    """A claimed delivery with what sending it needs."""

    id: UUID
    user_id: UUID
    device_id: UUID
    message_id: UUID
    attempts: int
    enqueued_at: datetime
    device_owner: UUID
    push_token: str
    platform: str
    conversation_id: UUID
    title: str | None
    content: str | None


class PushDispatcher:
    """Sends what the outbox holds; any number of them may run against one database."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: PushSender,
        settings: PushSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.id = new_id()
        self.sessions = sessions
        self.sender = sender
        self.settings = settings
        self.clock = clock
        self._stopping = asyncio.Event()
        self._nudged = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_prune: datetime | None = None

    # --- running in the background ---

    def start(self) -> None:
        if not self.sender.sends:
            logger.warning("push notifications are logged, not sent: SURGE_FCM_CREDENTIALS_FILE is not set")
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"push-dispatcher-{self.id}")

    def wake(self) -> None:
        """A push was just enqueued here: look now rather than at the next poll."""
        self._nudged.set()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Let the pass in progress finish (its claims would otherwise wait out their expiry), then stop."""
        self._stopping.set()
        self._nudged.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                handled = await self.run_once()
            except Exception:
                logger.exception("push dispatch pass failed")
                handled = 0
            if handled >= self.settings.batch_size:
                continue  # a full batch: more are probably waiting
            # Woken at once for pushes enqueued here; the poll finds the rest (other replicas', retries
            # coming due, claims of a replica that died).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), self.settings.poll_interval_s)
            self._nudged.clear()

    # --- one pass ---

    async def run_once(self) -> int:
        """Expand, claim, send and record once; returns how many deliveries were claimed."""
        now = self.clock()
        await self.expand(now)
        claimed = await self.claim(now)
        if claimed:
            await self.deliver(claimed)
        await self._maintain(now)
        return len(claimed)

    async def expand(self, now: datetime) -> int:
        """Turn outbox rows into deliveries, one per device of each answer's owner."""
        picked = (
            select(m.PushOutbox.id)
            .order_by(m.PushOutbox.id)
            .limit(self.settings.batch_size)
            .with_for_update(skip_locked=True)
        )
        async with self.sessions() as session:
            # Deleting first takes the rows (and, on SQLite, the write lock) before reading anything.
            finished = (
                await session.execute(
                    delete(m.PushOutbox)
                    .where(m.PushOutbox.id.in_(picked))
                    .returning(m.PushOutbox.user_id, m.PushOutbox.message_id, m.PushOutbox.created_at)
                    .execution_options(synchronize_session=False)
                )
            ).all()
            if not finished:
                return 0
            devices: dict[UUID, list[UUID]] = {}
            for device_id, user_id in await session.execute(
                select(m.Device.id, m.Device.user_id).where(
                    m.Device.user_id.in_({row.user_id for row in finished})
                )
            ):
                devices.setdefault(user_id, []).append(device_id)
            rows = [
                {
                    "id": new_id(),
                    "user_id": row.user_id,
                    "message_id": row.message_id,
                    "device_id": device_id,
                    "status": "pending",
                    "attempts": 0,
                    "due_at": now,
                    "enqueued_at": row.created_at,
                    "created_at": now,
                    "updated_at": now,
                }
                for row in finished
                for device_id in devices.get(row.user_id, [])
            ]
            if rows:
                await session.execute(_insert_new_deliveries(session, rows))
            await session.commit()
        return len(finished)

    async def claim(self, now: datetime) -> list[UUID]:
        """Make due deliveries this dispatcher's until ``now + claim_ttl_s``; committed before sending."""
        claimable = and_(
            D.status == "pending",
            D.due_at <= now,
            or_(D.claim_expires_at.is_(None), D.claim_expires_at <= now),
        )
        picked = (
            select(D.id)
            .where(claimable)
            .order_by(D.due_at)
            .limit(self.settings.batch_size)
            .with_for_update(skip_locked=True)
        )
        async with self.sessions() as session:
            claimed = await session.scalars(
                update(D)
                .where(D.id.in_(picked), claimable)
                .values(
                    claimed_by=self.id, claim_expires_at=now + timedelta(seconds=self.settings.claim_ttl_s)
                )
                .returning(D.id)
                .execution_options(synchronize_session=False)
            )
            ids = list(claimed)
            await session.commit()
        return ids

    async def deliver(self, ids: Sequence[UUID]) -> None:
        """Send the claimed deliveries that should still go out, and record what FCM said."""
        now = self.clock()
        async with self.sessions() as session:
            claimed = await self._load(session, ids)
            recent = await self._recent_sends(session, {item.device_id for item in claimed}, now)
        pushes: list[tuple[_Claimed, Push]] = []
        dropped: list[tuple[UUID, str]] = []
        deferred: list[tuple[UUID, datetime]] = []
        ttl = timedelta(seconds=self.settings.ttl_s)
        for item in claimed:
            if item.enqueued_at + ttl <= now:
                dropped.append((item.id, "expired"))
            elif item.device_owner != item.user_id:
                dropped.append((item.id, "device_moved"))
            else:
                count, oldest = recent.get(item.device_id, (0, now))
                if count >= self.settings.per_device_per_10min:
                    deferred.append((item.id, oldest + RATE_WINDOW))
                    continue
                recent[item.device_id] = (count + 1, oldest)
                title, body = notification_text(
                    item.title, item.content, include_text=self.settings.include_text
                )
                push = Push(
                    delivery_id=item.id,
                    device_id=item.device_id,
                    platform=item.platform,
                    token=item.push_token,
                    conversation_id=item.conversation_id,
                    message_id=item.message_id,
                    title=title,
                    body=body,
                    expires_at=item.enqueued_at + ttl,
                )
                pushes.append((item, push))
        results: list[SendResult] = []
        if pushes:
            started = time.perf_counter()
            results = await self.sender.send([push for _, push in pushes], now=now)
            PUSH_BATCH_SECONDS.observe(time.perf_counter() - started)
        await self._record(now, list(zip(pushes, results, strict=True)), dropped, deferred)

    async def _load(self, session: AsyncSession, ids: Sequence[UUID]) -> list[_Claimed]:
        content: Any = m.Message.content if self.settings.include_text else None
        rows = await session.execute(
            select(
                D.id,
                D.user_id,
                D.device_id,
                D.message_id,
                D.attempts,
                D.enqueued_at,
                m.Device.user_id,
                m.Device.push_token,
                m.Device.platform,
                m.Conversation.id,
                m.Conversation.title,
                *([content] if content is not None else []),
            )
            .join(m.Device, m.Device.id == D.device_id)
            .join(m.Message, m.Message.id == D.message_id)
            .join(m.Conversation, m.Conversation.id == m.Message.conversation_id)
            .where(D.id.in_(ids), D.claimed_by == self.id)
            .order_by(D.due_at, D.id)
        )
        return [_Claimed(*row, *([] if content is not None else [None])) for row in rows]

    async def _recent_sends(
        self, session: AsyncSession, device_ids: set[UUID], now: datetime
    ) -> dict[UUID, tuple[int, datetime]]:
        """Per device: pushes sent within the rate window, and the oldest of them."""
        if not device_ids:
            return {}
        rows = await session.execute(
            select(D.device_id, func.count(), func.min(D.sent_at))
            .where(D.device_id.in_(device_ids), D.sent_at > now - RATE_WINDOW)
            .group_by(D.device_id)
        )
        return {device_id: (count, oldest or now) for device_id, count, oldest in rows}

    async def _record(
        self,
        now: datetime,
        sent: list[tuple[tuple[_Claimed, Push], SendResult]],
        dropped: list[tuple[UUID, str]],
        deferred: list[tuple[UUID, datetime]],
    ) -> None:
        ours = D.claimed_by == self.id
        async with self.sessions() as session:
            for (item, push), result in sent:
                await self._record_send(session, now, item, push, result)
            for delivery_id, reason in dropped:
                PUSH_DROPPED.labels(reason).inc()
                await session.execute(
                    update(D)
                    .where(D.id == delivery_id, ours)
                    .values(status="dropped", finished_at=now, outcome=reason, **_RELEASED)
                )
            for delivery_id, due_at in deferred:
                PUSH_DEFERRED.inc()
                await session.execute(
                    update(D)
                    .where(D.id == delivery_id, ours)
                    .values(due_at=due_at, outcome="rate_limited", **_RELEASED)
                )
            await session.commit()

    async def _record_send(
        self, session: AsyncSession, now: datetime, item: _Claimed, push: Push, result: SendResult
    ) -> None:
        """What FCM answered for one delivery: sent, token gone, retry later, or given up."""
        PUSH_SENDS.labels(result.code).inc()
        if result.alert:
            PUSH_AUTH_ERRORS.labels(result.code).inc()
            logger.error(
                "FCM refused our credentials: pushes are not being delivered",
                extra={"code": result.code, "platform": push.platform},
            )
        row = update(D).where(D.id == item.id, D.claimed_by == self.id)
        attempts = item.attempts + 1
        if result.outcome is Outcome.SENT:
            await session.execute(
                row.values(
                    status="sent",
                    attempts=attempts,
                    sent_at=now,
                    finished_at=now,
                    outcome=result.code,
                    **_RELEASED,
                )
            )
        elif result.outcome is Outcome.DELETE_TOKEN:
            # The device goes, and every push still pending for it with it (foreign key cascade).
            await session.execute(delete(m.Device).where(m.Device.id == item.device_id))
            PUSH_TOKENS_DELETED.labels(result.code).inc()
            logger.info("push token deleted", extra={"device_id": str(item.device_id), "reason": result.code})
        elif result.outcome is Outcome.RETRY and attempts < self.settings.max_attempts:
            delay = self.retry_delay(attempts, result.retry_after_s)
            await session.execute(
                row.values(
                    attempts=attempts,
                    due_at=now + timedelta(seconds=delay),
                    outcome=result.code,
                    **_RELEASED,
                )
            )
            PUSH_RETRIES.labels(result.code).inc()
        else:
            if result.outcome is Outcome.RETRY:
                PUSH_DROPPED.labels("gave_up").inc()
            elif result.outcome is Outcome.REJECTED:
                PUSH_DROPPED.labels("rejected").inc()
            await session.execute(
                row.values(
                    status="failed", attempts=attempts, finished_at=now, outcome=result.code, **_RELEASED
                )
            )

    def retry_delay(self, attempts: int, retry_after_s: float | None) -> float:
        """Exponential back-off with jitter, and never sooner than FCM's ``Retry-After``."""
        backoff = min(self.settings.retry_max_s, self.settings.retry_base_s * 2 ** (attempts - 1))
        # Jitter, so that a fleet of dispatchers does not come back in step.
        backoff *= random.uniform(0.8, 1.2)
        return float(max(backoff, retry_after_s or 0.0))

    async def _maintain(self, now: datetime) -> None:
        """Report the backlog; now and then forget deliveries finished long ago."""
        async with self.sessions() as session:
            if self._next_prune is None or now >= self._next_prune:
                self._next_prune = now + PRUNE_EVERY
                await session.execute(
                    delete(D).where(D.status != "pending", D.finished_at < now - KEEP_FINISHED)
                )
                await session.commit()
            completions = await session.scalar(select(func.count()).select_from(m.PushOutbox))
            deliveries = await session.scalar(
                select(func.count()).select_from(D).where(D.status == "pending")
            )
        PUSH_OUTBOX_BACKLOG.labels("completions").set(completions or 0)
        PUSH_OUTBOX_BACKLOG.labels("deliveries").set(deliveries or 0)


def _insert_new_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING: a (message, device) already expanded stays as it is."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(D).values(rows).on_conflict_do_nothing(index_elements=["message_id", "device_id"])
