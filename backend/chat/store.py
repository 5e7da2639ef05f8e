"""A turn's row in the database: its start, its checkpoints, its lease, and its end, written in one place.

Whoever ends a turn — its runner, a cancel that found the runner gone, a replica recovering it after its
own replica died — goes through :meth:`TurnStore.finish`: one conditional UPDATE (so that only one of
them wins) that also stores the event log's layout, the finishers' writes in that transaction (when they
have any), then the terminal event, in that order, so that a client that sees ``done`` and reads the
message finds it finished.

The database work of a turn does not grow with its answer: the row is marked ``streaming`` once (in a
batch with the other turns that started), written whole once at the end, and in between only appended
to — and only when the event log cannot hold the stream (embedded, or Redis unreachable).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

import msgspec
from sqlalchemy import Table, Update, and_, bindparam, delete, exists, insert, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.chat.event_log import EventLog
from backend.chat.events import TurnEvent, encode_data
from backend.chat.layout import Layout
from backend.chat.turn import FinishedTurn, TurnEnding, TurnFailed
from backend.conversations.schemas import message_view
from backend.db import models as m

logger = logging.getLogger("surge.chat")


# Waits between tries of a runner's final write while the database is unreachable; after the last one
# the turn is left to the sweepers, which settle it from its event log.
FINISH_RETRY_DELAYS_S = (0.5, 1.0, 2.0)

_messages = cast("Table", m.Message.__table__)
_active = or_(*(_messages.c.status == status for status in m.ACTIVE_STATUSES))
# Core statements compiled once and run as executemany for every turn at once (not ``in_()``: an expanding
# parameter cannot be used with executemany on PostgreSQL).
MARK_STREAMING = (
    update(_messages)
    .where(_messages.c.id == bindparam("turn_id"), _messages.c.lease_owner == bindparam("owner"), _active)
    .values(
        status="streaming",
        worker=bindparam("worker"),
        started_at=bindparam("started_at"),
        first_token_at=bindparam("first_token_at"),
        attempts=bindparam("attempts"),
    )
)
ADD_CHUNK = insert(m.message_chunk)
DROP_CHUNKS = delete(m.message_chunk).where(m.message_chunk.c.message_id == bindparam("turn_id"))


@functools.cache
def _end_statement(columns: frozenset[str], *, fenced: bool) -> Update:
    """The conditional UPDATE that ends a turn, setting ``columns`` (bound by name), returning the row:
    only while the turn is unfinished, and (``fenced``) held by ``:owner``. One per shape of ending,
    built once: with its transaction, an ORM UPDATE ... RETURNING built per turn, its entity loaded, cost
    2.4 ms of CPU against 1.0 ms for this (a handful of shapes exist: with or without usage, failure...)."""
    condition = [_messages.c.id == bindparam("turn_id"), _active]
    if fenced:
        condition.append(_messages.c.lease_owner == bindparam("owner"))
    return (
        update(_messages)
        .where(*condition)
        .values({column: bindparam(column) for column in sorted(columns)})
        .returning(*_messages.c)
    )


@dataclass(frozen=True, slots=True)
class Finisher:
    """Writes stored with a turn's end, in its transaction, for the turns ``wants`` picks (the push outbox
    hooks in here: an answer that finished while nobody watched)."""

    wants: Callable[[FinishedTurn], bool]
    write: Callable[[AsyncSession, FinishedTurn], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Chunk:
    """Text a streaming turn added since its last checkpoint, and the layout of those events."""

    turn_id: UUID
    last_seq: int
    content: str
    reasoning: str
    layout: bytes


@dataclass(frozen=True, slots=True)
class StoredLog:
    """A turn's event log as the database has it: whole once the turn ended, else as checkpointed."""

    message: m.Message
    content: str
    reasoning: str
    layout: Layout | None

    @property
    def ended(self) -> bool:
        return self.message.status not in m.ACTIVE_STATUSES

    def events(self, after: int = 0) -> list[TurnEvent]:
        """The events after ``after``, ending with the terminal one if the turn ended."""
        if self.layout is None:
            return _compact_log(self.message, after) if self.ended else []
        events = list(self.layout.events(self.content, self.reasoning, after))
        if self.ended:
            seq = self.layout.last_seq + 1
            if seq > after:
                events.append(
                    TurnEvent(seq=seq, event=_terminal_name(self.message), data=_terminal_data(self.message))
                )
        return events


def _terminal_name(message: m.Message) -> str:
    return "error" if message.status == "failed" else "done"


def _terminal_data(message: m.Message) -> msgspec.Raw:
    if message.status == "failed":
        failure = TurnFailed(
            message.error_code or "internal",
            message.error_message or "",
            retry_after_s=message.error_retry_after_s,
        )
        return encode_data(failure.event_payload())
    return encode_data({"message": msgspec.to_builtins(message_view(message))})


def _compact_log(message: m.Message, after: int) -> list[TurnEvent]:
    """A finished turn stored before layouts were kept: ``started``, the whole reasoning, the whole content
    and the terminal event. A reader that saw more of the live log than this holds still gets its end."""
    events: list[tuple[str, msgspec.Raw]] = [("started", encode_data({"model": message.model}))]
    if message.reasoning:
        events.append(("reasoning", encode_data({"delta": message.reasoning})))
    if message.content:
        events.append(("content", encode_data({"delta": message.content})))
    events.append((_terminal_name(message), _terminal_data(message)))
    replay = [TurnEvent(seq=index, event=name, data=data) for index, (name, data) in enumerate(events, 1)]
    if after >= len(replay):
        return [TurnEvent(seq=after + 1, event=replay[-1].event, data=replay[-1].data)]
    return replay[after:]


class TurnStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], event_log: EventLog) -> None:
        self.sessions = sessions
        # A turn's end with nothing else to write is one statement, its own transaction (``_write_end``).
        self.autocommit = cast("AsyncEngine", sessions.kw["bind"]).execution_options(
            isolation_level="AUTOCOMMIT"
        )
        self.event_log = event_log
        # Extra work done when a turn's end is stored, inside its transaction, and after it committed.
        self.finishers: list[Finisher] = []
        self.committed: list[Callable[[FinishedTurn], None]] = []

    # --- while a turn runs ---
    async def mark_streaming(self, rows: Sequence[dict[str, Any]]) -> None:
        """Turns that reached a worker: status, worker and timings (the keys of ``MARK_STREAMING``)."""
        if rows:
            async with self.sessions() as session:
                await session.execute(MARK_STREAMING, list(rows))
                await session.commit()

    async def checkpoint(self, chunks: Sequence[Chunk]) -> None:
        """Append streaming turns' new text: one statement for all of them."""
        if chunks:
            async with self.sessions() as session:
                await session.execute(
                    ADD_CHUNK,
                    [
                        {
                            "message_id": chunk.turn_id,
                            "last_seq": chunk.last_seq,
                            "content": chunk.content,
                            "reasoning": chunk.reasoning,
                            "layout": chunk.layout,
                        }
                        for chunk in chunks
                    ],
                )
                await session.commit()

    async def stored_log(self, turn_id: UUID) -> StoredLog | None:
        """The turn's log as stored: its row, and its checkpoints while it streams."""
        async with self.sessions() as session:
            message = await session.get(m.Message, turn_id)
            if message is None:
                return None
            if message.status not in m.ACTIVE_STATUSES:
                layout = Layout.decode(message.event_layout) if message.event_layout else None
                return StoredLog(message, message.content, message.reasoning or "", layout)
            chunks = (
                await session.execute(
                    select(
                        m.message_chunk.c.last_seq,
                        m.message_chunk.c.content,
                        m.message_chunk.c.reasoning,
                        m.message_chunk.c.layout,
                    )
                    .where(m.message_chunk.c.message_id == turn_id)
                    .order_by(m.message_chunk.c.last_seq)
                )
            ).all()
        layout = Layout()
        for chunk in chunks:
            layout.extend(Layout.decode(chunk.layout))
        return StoredLog(
            message, "".join(c.content for c in chunks), "".join(c.reasoning for c in chunks), layout
        )

    # --- leases and recovery ---
    @staticmethod
    def _owner_silent(cutoff: datetime) -> Any:
        """The turn's replica has not heartbeaten since ``cutoff`` (or is gone)."""
        return not_(
            exists().where(and_(m.Replica.id == m.Message.lease_owner, m.Replica.heartbeat_at >= cutoff))
        )

    async def lapsed(self, cutoff: datetime, *, everything: bool, limit: int = 200) -> list[UUID]:
        """Unfinished answers whose replica went silent before ``cutoff`` (``everything``: all of them)."""
        condition = [m.Message.status.in_(m.ACTIVE_STATUSES), m.Message.role == "assistant"]
        if not everything:
            condition.append(self._owner_silent(cutoff))
        async with self.sessions() as session:
            return list(await session.scalars(select(m.Message.id).where(*condition).limit(limit)))

    async def claim(
        self, turn_id: UUID, owner: UUID, *, cutoff: datetime, everything: bool
    ) -> tuple[m.Message, m.Conversation] | None:
        """Take over an unfinished turn whose replica went silent; None if another one got there first."""
        claim = [m.Message.id == turn_id, m.Message.status.in_(m.ACTIVE_STATUSES)]
        if not everything:
            claim.append(self._owner_silent(cutoff))
        async with self.sessions() as session:
            claimed = await session.execute(update(m.Message).where(*claim).values(lease_owner=owner))
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

        ``owner`` fences the write: only while that replica holds the turn (None: whoever holds it, as long
        as the turn is unfinished). ``retry`` tries again while the database is unreachable.
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
        after = ending.layout.last_seq if ending.layout is not None else None
        if ending.failure is not None:
            await self.event_log.append(turn_id, "error", ending.failure.event_payload(), after=after)
        else:
            await self.event_log.append(turn_id, "done", _terminal_data(stored), after=after)
        return stored

    async def _attached(self, turn_id: UUID) -> bool:
        try:
            return await self.event_log.watchers(turn_id) > 0
        except Exception:
            return False

    async def _write_end(
        self, finished: FinishedTurn, ending: TurnEnding, owner: UUID | None
    ) -> m.Message | None:
        values = {**ending.row_values(), "completed_at": datetime.now(UTC), "lease_owner": None}
        statement = _end_statement(frozenset(values), fenced=owner is not None)
        parameters = {**values, "turn_id": finished.message_id, "owner": owner}
        finishers = [finisher for finisher in self.finishers if finisher.wants(finished)]
        if not finishers and not ending.checkpointed:
            # Nothing to write with it (most turns: watched to their end, never checkpointed): the UPDATE
            # is atomic on its own, and without its BEGIN and COMMIT round trips and an ORM session, the
            # end of a turn took 0.45 ms of CPU in a microbenchmark of that shape against 0.26 ms.
            async with self.autocommit.connect() as connection:
                row = (await connection.execute(statement, parameters)).first()
        else:
            async with self.sessions() as session:
                row = (await session.execute(statement, parameters)).first()
                if row is None:
                    await session.rollback()
                    return None
                if ending.checkpointed:
                    await session.execute(DROP_CHUNKS, {"turn_id": finished.message_id})
                for finisher in finishers:
                    await finisher.write(session, finished)
                await session.commit()
        if row is None:
            return None
        stored = m.Message(**row._mapping)
        for callback in self.committed:
            callback(finished)
        return stored
