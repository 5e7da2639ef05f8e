"""Replicas and their leases: no turn stays ``queued`` or ``streaming`` after its replica died.

A turn's row names the replica generating it, and the claim holds while that replica heartbeats its row
in ``replica`` (one write per replica per interval, however many turns it runs). Every replica also
sweeps: a turn whose replica went silent is claimed and either re-run (nothing reached the user yet) or
failed with the text its readers had (from the event log, else from its checkpoints).
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
from backend.chat.event_log import EventLog, LogUnavailable
from backend.chat.events import TurnEvent, text_from_events
from backend.chat.layout import Layout
from backend.chat.runner import TurnRunner
from backend.chat.store import TurnStore
from backend.chat.turn import Turn, TurnEnding, TurnFailed
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
        store: TurnStore,
        event_log: EventLog,
        runner: TurnRunner,
        replica_id: UUID,
    ) -> None:
        self.settings = settings
        self.chat = settings.chat
        self.sessions = sessions
        self.store = store
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
        """Settle turns whose replica went silent (or, alone on the database, every unfinished turn)."""
        cutoff = datetime.now(UTC) - self.heartbeat_window
        settled = 0
        for turn_id in await self.store.lapsed(cutoff, everything=everything):
            if turn_id in self.runner.running:
                continue
            if await self._settle(turn_id, cutoff=cutoff, everything=everything):
                settled += 1
        return settled

    async def _settle(self, turn_id: UUID, *, cutoff: datetime, everything: bool) -> bool:
        claimed = await self.store.claim(turn_id, self.replica_id, cutoff=cutoff, everything=everything)
        if claimed is None:
            return False  # another replica got there first
        message, conversation = claimed
        if message.parent_id is None:
            return False
        events, checkpointed = await self._log_of(turn_id)
        content, reasoning = text_from_events(events)
        streamed = bool(events and (content or reasoning)) or bool(message.first_token_at)
        model = self.settings.inference.model(message.model or "")
        if not streamed and model is not None and message.attempts < self.chat.upstream_attempts:
            logger.info("re-running a turn whose replica went away", extra={"turn": str(turn_id)})
            metrics.TURNS_RECOVERED.labels("rerun").inc()
            async with self.sessions() as session:
                tier = await session.scalar(select(m.User.tier).where(m.User.id == conversation.user_id))
            limits = tier_limits(self.settings.tiers, tier or "free")
            self.runner.start(
                Turn.from_message(message, user_id=conversation.user_id, model=model, limits=limits)
            )
            return True
        stored = await self.store.finish(
            turn_id,
            TurnEnding(
                status="failed",
                finish_reason="error",
                content=content,
                reasoning=reasoning,
                failure=TurnFailed("interrupted", "The answer was interrupted; regenerate it to try again."),
                layout=Layout.of(events),
                checkpointed=checkpointed,
            ),
            conversation_id=conversation.id,
            user_id=conversation.user_id,
            owner=self.replica_id,
        )
        if stored is not None:
            metrics.TURNS_RECOVERED.labels("failed").inc()
        return True

    async def _log_of(self, turn_id: UUID) -> tuple[list[TurnEvent], bool]:
        """Everything that reached the turn's readers: its event log, else its checkpoints (an embedded
        process restarting, or the log lost with Redis). Also whether checkpoints exist."""
        stored = await self.store.stored_log(turn_id)
        checkpointed = stored is not None and stored.layout is not None and len(stored.layout) > 0
        try:
            events = await self.event_log.read(turn_id)
        except LogUnavailable:
            events = []
        if not events and stored is not None:
            events = stored.events()
        return events, checkpointed
