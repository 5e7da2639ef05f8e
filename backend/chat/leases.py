"""Replicas and their leases: no turn stays ``queued`` or ``streaming`` after its replica died.

Each replica heartbeats its row in ``replica`` and renews the leases of the turns it generates. Every
replica also sweeps: a turn whose lease lapsed is claimed and either re-run (nothing reached the user
yet) or failed with the text it had (from the event log, which is ahead of the last checkpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.admission.tiers import tier_limits
from backend.chat.event_log import EventLog
from backend.chat.runner import Turn, TurnRunner
from backend.db import models as m
from backend.observability import metrics
from backend.settings import Settings

logger = logging.getLogger("surge.chat")


class AnotherReplicaRunning(RuntimeError):
    """Two processes on one database without Redis would each keep their own event logs."""


class LeaseKeeper:
    def __init__(
        self,
        *,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        event_log: EventLog,
        runner: TurnRunner,
        replica_id: UUID,
    ) -> None:
        self.settings = settings
        self.chat = settings.chat
        self.sessions = sessions
        self.event_log = event_log
        self.runner = runner
        self.replica_id = replica_id
        self.shared_broker = settings.redis.url is not None
        self._task: asyncio.Task[None] | None = None
        self.registered = False

    @property
    def heartbeat_window(self) -> timedelta:
        return timedelta(seconds=max(self.chat.lease_ttl_s, 3 * self.chat.sweep_interval_s))

    async def register(self) -> None:
        """Join the replica table; refuse to run beside another process when either lacks Redis."""
        now = datetime.now(UTC)
        async with self.sessions() as session:
            await session.execute(
                delete(m.Replica).where(m.Replica.heartbeat_at < now - self.heartbeat_window * 4)
            )
            alive = list(
                await session.scalars(
                    select(m.Replica).where(m.Replica.heartbeat_at >= now - self.heartbeat_window)
                )
            )
            conflicting = [r for r in alive if not (self.shared_broker and r.shared_broker)]
            if conflicting:
                other = conflicting[0]
                raise AnotherReplicaRunning(
                    f"another Surge process (pid {other.pid} on {other.hostname}) is serving this database, "
                    "and more than one backend process needs Redis (set SURGE_REDIS_URL on every process)"
                )
            session.add(
                m.Replica(
                    id=self.replica_id,
                    hostname=socket.gethostname()[:255],
                    pid=os.getpid(),
                    shared_broker=self.shared_broker,
                    heartbeat_at=now,
                )
            )
            await session.commit()

    async def start(self) -> None:
        """Register and recover; with the database unreachable, keep serving (``/readyz`` says so) and
        retry in the background rather than crash-looping."""
        try:
            await self._join()
        except (OSError, SQLAlchemyError) as exc:
            logger.warning(
                "database unreachable at start-up; will retry", extra={"error": type(exc).__name__}
            )
        self._task = asyncio.create_task(self._loop(), name="surge-lease-keeper")

    async def _join(self) -> None:
        await self.register()
        self.registered = True
        # Alone on the database (embedded), no other replica can own an unfinished turn: recover them
        # all now instead of waiting for their leases to lapse.
        await self.sweep(everything=not self.shared_broker)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            async with self.sessions() as session:
                await session.execute(delete(m.Replica).where(m.Replica.id == self.replica_id))
                await session.commit()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.chat.sweep_interval_s)
            try:
                if not self.registered:
                    await self._join()
                    continue
                await self.heartbeat()
                await self.runner.renew_leases()
                await self.sweep()
            except AnotherReplicaRunning:
                logger.critical("another replica serves this database without Redis; stopping upkeep")
                return
            except Exception:
                logger.exception("lease upkeep failed; retrying next interval")

    async def heartbeat(self) -> None:
        async with self.sessions() as session:
            await session.execute(
                update(m.Replica)
                .where(m.Replica.id == self.replica_id)
                .values(heartbeat_at=datetime.now(UTC))
            )
            await session.commit()

    async def sweep(self, *, everything: bool = False) -> int:
        """Settle turns whose lease lapsed (or, alone on the database, every unfinished turn)."""
        now = datetime.now(UTC)
        condition = [m.Message.status.in_(m.ACTIVE_STATUSES), m.Message.role == "assistant"]
        if not everything:
            condition.append(m.Message.lease_expires_at < now)
        async with self.sessions() as session:
            lapsed = list(await session.scalars(select(m.Message.id).where(*condition).limit(200)))
        settled = 0
        for turn_id in lapsed:
            if turn_id in self.runner.running:
                continue
            if await self._settle(turn_id, now=now, everything=everything):
                settled += 1
        return settled

    async def _settle(self, turn_id: UUID, *, now: datetime, everything: bool) -> bool:
        claim = [m.Message.id == turn_id, m.Message.status.in_(m.ACTIVE_STATUSES)]
        if not everything:
            claim.append(m.Message.lease_expires_at < now)
        async with self.sessions() as session:
            claimed = await session.execute(
                update(m.Message)
                .where(*claim)
                .values(
                    lease_owner=self.replica_id,
                    lease_expires_at=now + timedelta(seconds=self.chat.lease_ttl_s),
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return False  # another replica got there first
            await session.commit()
            message = await session.get(m.Message, turn_id)
            conversation = await session.get(m.Conversation, message.conversation_id) if message else None
            owner = await session.get(m.User, conversation.user_id) if conversation else None
        if message is None or conversation is None or message.parent_id is None:
            return False
        events = await self.event_log.read(turn_id)
        deltas = [event for event in events if event.event in ("reasoning", "content")]
        streamed = bool(deltas or message.content or message.reasoning or message.first_token_at)
        model = self.settings.inference.model(message.model or "")
        if not streamed and model is not None and message.attempts < self.chat.upstream_attempts:
            logger.info("re-running a turn whose replica went away", extra={"turn": str(turn_id)})
            metrics.TURNS_RECOVERED.labels("rerun").inc()
            limits = tier_limits(self.settings.tiers, owner.tier if owner else "free")
            self.runner.start(
                Turn(
                    message_id=message.id,
                    user_message_id=message.parent_id,
                    conversation_id=message.conversation_id,
                    user_id=conversation.user_id,
                    model=model,
                    thinking=bool(message.thinking),
                    max_tokens=message.max_tokens or model.max_output_tokens,
                    accepted_at=message.created_at,
                    attempts=message.attempts,
                    priority=limits.priority,
                    paying=limits.paying,
                )
            )
            return True
        await self._fail(message, deltas=[(e.event, e.payload()["delta"]) for e in deltas])
        return True

    async def _fail(self, message: m.Message, *, deltas: list[tuple[str, str]]) -> None:
        """End an interrupted turn with whatever text had reached the user."""
        if deltas:
            content = "".join(text for kind, text in deltas if kind == "content")
            reasoning = "".join(text for kind, text in deltas if kind == "reasoning") or None
        else:
            content, reasoning = message.content, message.reasoning
        error_message = "The answer was interrupted; regenerate it to try again."
        async with self.sessions() as session:
            result = await session.execute(
                update(m.Message)
                .where(m.Message.id == message.id, m.Message.lease_owner == self.replica_id)
                .values(
                    status="failed",
                    finish_reason="error",
                    content=content,
                    reasoning=reasoning,
                    error_code="interrupted",
                    error_message=error_message,
                    completed_at=datetime.now(UTC),
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
            await session.commit()
        if result.rowcount == 1:  # type: ignore[attr-defined]
            metrics.TURNS_RECOVERED.labels("failed").inc()
            await self.event_log.append(
                message.id, "error", {"code": "interrupted", "message": error_message}
            )
