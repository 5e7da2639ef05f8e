"""A turn's row in the database: its checkpoints, its lease, and its end, written in one place.

Whoever ends a turn — its runner, a cancel that found the runner gone, a replica recovering it after its
own replica died — goes through :meth:`TurnStore.finish`: one conditional UPDATE (so that only one of
them wins), the finishers in that transaction, then the terminal event, in that order, so that a client
that sees ``done`` and reads the message finds it finished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

import msgspec
from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.chat.event_log import EventLog
from backend.chat.turn import FinishedTurn, TurnEnding
from backend.conversations.schemas import message_view
from backend.db import models as m

logger = logging.getLogger("surge.chat")

# Called when a turn's end is stored, inside that transaction (the push outbox hooks in here).
Finisher = Callable[[AsyncSession, FinishedTurn], Awaitable[None]]

# Waits between tries of a runner's final write while the database is unreachable; after the last one
# the turn is left to the sweepers, which settle it from its event log.
FINISH_RETRY_DELAYS_S = (0.5, 1.0, 2.0)

_messages = cast("Table", m.Message.__table__)
# A Core statement compiled once and run as an executemany: the checkpoint runs every second for every
# streaming turn, and building an ORM UPDATE per turn showed up in profiles.
CHECKPOINT = (
    update(_messages)
    .where(
        _messages.c.id == bindparam("turn_id"),
        _messages.c.lease_owner == bindparam("owner"),
        # Not ``in_()``: its expanding parameter cannot be used with executemany on PostgreSQL.
        or_(*(_messages.c.status == status for status in m.ACTIVE_STATUSES)),
    )
    .values(
        status="streaming",
        content=bindparam("content"),
        reasoning=bindparam("reasoning"),
        first_token_at=bindparam("first_token_at"),
        worker=bindparam("worker"),
        started_at=bindparam("started_at"),
        attempts=bindparam("attempts"),
    )
)


class TurnStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], event_log: EventLog) -> None:
        self.sessions = sessions
        self.event_log = event_log
        # Extra work done when a turn's end is stored, inside its transaction.
        self.finishers: list[Finisher] = []

    # --- while a turn runs ---
    async def checkpoint(self, rows: Sequence[dict[str, Any]]) -> None:
        """Save streaming turns' text so far (the keys of ``CHECKPOINT``): one statement for all."""
        if not rows:
            return
        async with self.sessions() as session:
            await session.execute(CHECKPOINT, list(rows))
            await session.commit()

    async def renew_leases(self, owner: UUID, ttl_s: float) -> None:
        """Extend ``owner``'s claim on every turn it is generating (one statement)."""
        async with self.sessions() as session:
            await session.execute(
                update(m.Message)
                .where(m.Message.lease_owner == owner, m.Message.status.in_(m.ACTIVE_STATUSES))
                .values(lease_expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s))
            )
            await session.commit()

    # --- recovery ---
    async def lapsed(self, now: datetime, *, everything: bool, limit: int = 200) -> list[UUID]:
        """Unfinished answers whose lease lapsed (or, ``everything``, all unfinished answers)."""
        condition = [m.Message.status.in_(m.ACTIVE_STATUSES), m.Message.role == "assistant"]
        if not everything:
            condition.append(m.Message.lease_expires_at < now)
        async with self.sessions() as session:
            return list(await session.scalars(select(m.Message.id).where(*condition).limit(limit)))

    async def claim(
        self, turn_id: UUID, owner: UUID, *, now: datetime, ttl_s: float, everything: bool
    ) -> tuple[m.Message, m.Conversation] | None:
        """Take over an unfinished turn whose lease lapsed; None if another replica got there first."""
        claim = [m.Message.id == turn_id, m.Message.status.in_(m.ACTIVE_STATUSES)]
        if not everything:
            claim.append(m.Message.lease_expires_at < now)
        async with self.sessions() as session:
            claimed = await session.execute(
                update(m.Message)
                .where(*claim)
                .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=ttl_s))
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            await session.commit()
            message = await session.get(m.Message, turn_id)
            conversation = await session.get(m.Conversation, message.conversation_id) if message else None
        if message is None or conversation is None:
            return None
        return message, conversation

    # --- the end ---
    async def finish(
        self,
        turn_id: UUID,
        ending: TurnEnding,
        *,
        conversation_id: UUID,
        user_id: UUID,
        owner: UUID | None,
        retry: bool = False,
    ) -> m.Message | None:
        """Store the turn's end and append its terminal event; None if the turn was no longer ours to end.

        ``owner`` fences the write: only while that replica holds the turn's lease (None: whoever holds
        it, as long as the turn is unfinished). ``retry`` tries again while the database is unreachable.
        """
        finished = FinishedTurn(
            message_id=turn_id,
            conversation_id=conversation_id,
            user_id=user_id,
            status=ending.status,
            attached=await self._attached(turn_id) if self.finishers else False,
        )
        stored: m.Message | None = None
        for delay in (*FINISH_RETRY_DELAYS_S, None) if retry else (None,):
            try:
                stored = await self._write_end(finished, ending, owner)
                break
            except Exception:
                if delay is None:
                    if retry:
                        logger.exception("storing a finished turn failed", extra={"turn": str(turn_id)})
                        return None
                    raise
                logger.warning("storing a finished turn failed; retrying", extra={"turn": str(turn_id)})
                await asyncio.sleep(delay)
        if stored is None:
            return None
        if ending.failure is not None:
            await self.event_log.append(turn_id, "error", ending.failure.event_payload())
        else:
            await self.event_log.append(
                turn_id, "done", {"message": msgspec.to_builtins(message_view(stored))}
            )
        return stored

    async def _attached(self, turn_id: UUID) -> bool:
        try:
            return await self.event_log.watchers(turn_id) > 0
        except Exception:
            return False

    async def _write_end(
        self, finished: FinishedTurn, ending: TurnEnding, owner: UUID | None
    ) -> m.Message | None:
        fence = [m.Message.id == finished.message_id, m.Message.status.in_(m.ACTIVE_STATUSES)]
        if owner is not None:
            fence.append(m.Message.lease_owner == owner)
        async with self.sessions() as session:
            stored: m.Message | None = await session.scalar(
                update(m.Message)
                .where(*fence)
                .values(
                    **ending.row_values(),
                    completed_at=datetime.now(UTC),
                    lease_owner=None,
                    lease_expires_at=None,
                )
                .returning(m.Message)
            )
            if stored is None:
                await session.rollback()
                return None
            for finisher in self.finishers:
                await finisher(session, finished)
            await session.commit()
            return stored
