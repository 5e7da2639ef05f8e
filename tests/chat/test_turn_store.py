"""TurnStore.finish: the one conditional write that ends a turn, fenced by the replica holding it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.chat.event_log import MemoryEventLog
from backend.chat.events import TurnEvent
from backend.chat.layout import Layout
from backend.chat.store import Finisher, TurnStore
from backend.chat.turn import FinishedTurn, TurnEnding, TurnFailed
from backend.db import models as m
from backend.db.base import new_id
from backend.inference.wire import Usage

HOLDER, OTHER_REPLICA = new_id(), new_id()


class RecordingLog(MemoryEventLog):
    """The in-process log, keeping what was appended (it forgets a turn once it ended)."""

    def __init__(self) -> None:
        super().__init__()
        self.appended: list[TurnEvent] = []

    async def append(self, turn_id: UUID, event: str, data: Any, *, after: int | None = None) -> TurnEvent:
        entry = await super().append(turn_id, event, data, after=after)
        self.appended.append(entry)
        return entry


async def streaming_turn(sessions: async_sessionmaker[AsyncSession]) -> m.Message:
    """A user, a conversation and an answer streaming on worker ``w0``, leased to ``HOLDER``."""
    now = datetime.now(UTC)
    user = m.User(id=new_id(), email=f"{new_id()}@example.com", display_name="Ann")
    conversation = m.Conversation(id=new_id(), user_id=user.id, model="deepseek-v3.1")
    answer = m.Message(
        id=new_id(),
        conversation_id=conversation.id,
        role="assistant",
        content="",
        status="streaming",
        model="deepseek-v3.1",
        worker="w0",
        attempts=1,
        lease_owner=HOLDER,
        created_at=now,
        updated_at=now,
    )
    async with sessions() as session:
        session.add(user)
        await session.flush()
        session.add(conversation)
        await session.flush()
        session.add(answer)
        await session.commit()
    return answer


async def stored(sessions: async_sessionmaker[AsyncSession], turn_id: UUID) -> m.Message:
    async with sessions() as session:
        message = await session.get(m.Message, turn_id)
    assert message is not None
    return message


def finish(store: TurnStore, answer: m.Message, ending: TurnEnding, owner: UUID | None) -> object:
    return store.finish(
        answer.id,
        ending,
        conversation_id=answer.conversation_id,
        user_id=UUID(int=0),
        owner=owner,
    )


COMPLETE = TurnEnding(
    status="complete",
    finish_reason="stop",
    content="Blue.",
    reasoning="The sky.",
    usage=Usage(prompt_tokens=12, completion_tokens=7, reasoning_tokens=3, cached_tokens=4),
    layout=Layout(),
)


async def test_only_the_replica_holding_a_turn_stores_its_end(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    answer = await streaming_turn(sessions)
    event_log = RecordingLog()
    store = TurnStore(sessions, event_log)

    # A replica that lost the turn (another took it over) is fenced off: nothing written, no end published.
    assert await finish(store, answer, COMPLETE, OTHER_REPLICA) is None
    row = await stored(sessions, answer.id)
    assert (row.status, row.content, row.lease_owner) == ("streaming", "", HOLDER)
    assert event_log.appended == []

    ended = await finish(store, answer, COMPLETE, HOLDER)
    assert isinstance(ended, m.Message)
    row = await stored(sessions, answer.id)
    for message in (ended, row):
        assert (message.status, message.finish_reason) == ("complete", "stop")
        assert (message.content, message.reasoning) == ("Blue.", "The sky.")
        assert (message.prompt_tokens, message.completion_tokens) == (12, 7)
        assert (message.reasoning_tokens, message.cached_tokens) == (3, 4)
        # What the ending does not know stays as the row had it; the lease is released.
        assert (message.worker, message.attempts, message.lease_owner) == ("w0", 1, None)
        assert message.completed_at is not None
    assert [event.event for event in event_log.appended] == ["done"]
    assert event_log.appended[0].payload()["message"]["content"] == "Blue."

    # Ended once: whoever comes next (a sweeper, a cancel) finds nothing to end.
    late = TurnEnding(status="cancelled", finish_reason="cancelled", content="", reasoning=None)
    assert await finish(store, answer, late, None) is None
    assert (await stored(sessions, answer.id)).status == "complete"


async def test_a_failed_turn_stores_its_error_and_ends_its_log_with_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    answer = await streaming_turn(sessions)
    event_log = RecordingLog()
    store = TurnStore(sessions, event_log)
    failed = TurnEnding(
        status="failed",
        finish_reason="error",
        content="Half an ans",
        reasoning=None,
        failure=TurnFailed("upstream_error", "The model server failed."),
        worker="w1",
        attempts=2,
        layout=Layout(),
    )

    ended = await finish(store, answer, failed, None)  # unfenced: whoever holds it, while unfinished

    assert isinstance(ended, m.Message)
    row = await stored(sessions, answer.id)
    assert (row.status, row.content, row.error_code) == ("failed", "Half an ans", "upstream_error")
    assert row.error_message == "The model server failed."
    assert (row.worker, row.attempts, row.prompt_tokens) == ("w1", 2, None)
    assert [event.event for event in event_log.appended] == ["error"]
    assert event_log.appended[0].payload() == {
        "code": "upstream_error",
        "message": "The model server failed.",
    }


@pytest.mark.parametrize("retry_after_s", [5, 2.5, None])
async def test_a_failed_turns_error_event_replays_from_its_row_as_it_went_out_live(
    sessions: async_sessionmaker[AsyncSession], retry_after_s: float | None
) -> None:
    # A reader resuming after the turn ended is served from the stored row: it must get the very event
    # the live readers got, retry hint included (a client waits that long before sending again).
    answer = await streaming_turn(sessions)
    event_log = RecordingLog()
    store = TurnStore(sessions, event_log)
    layout = Layout()
    layout.add_other("started", b'{"model":"deepseek-v3.1"}')
    overloaded = TurnEnding(
        status="failed",
        finish_reason="error",
        content="",
        reasoning=None,
        failure=TurnFailed("overloaded", "Every model server stayed busy.", retry_after_s=retry_after_s),
        layout=layout,
    )

    assert await finish(store, answer, overloaded, HOLDER) is not None

    live = event_log.appended[-1]
    replayed = await store.stored_log(answer.id)
    assert replayed is not None
    terminal = replayed.events(after=1)
    assert terminal == [live]
    assert terminal[0].sse() == live.sse()
    expected = {"code": "overloaded", "message": "Every model server stayed busy."}
    if retry_after_s is not None:
        expected["retry_after_s"] = retry_after_s
    assert live.payload() == expected


class TitleFinisher:
    """A finisher that titles the turn's conversation (in the end's transaction), then perhaps fails."""

    def __init__(self, *, wanted: bool, fails: bool = False) -> None:
        self.wanted, self.fails = wanted, fails
        self.written: list[UUID] = []

    def finisher(self) -> Finisher:
        return Finisher(wants=lambda _turn: self.wanted, write=self.write)

    async def write(self, session: AsyncSession, turn: FinishedTurn) -> None:
        await session.execute(
            update(m.Conversation).where(m.Conversation.id == turn.conversation_id).values(title="Finished")
        )
        self.written.append(turn.message_id)
        if self.fails:
            raise RuntimeError("the finisher failed")


async def title_of(sessions: async_sessionmaker[AsyncSession], conversation_id: UUID) -> str | None:
    async with sessions() as session:
        conversation = await session.get(m.Conversation, conversation_id)
    assert conversation is not None
    return conversation.title


async def test_a_finisher_that_wants_the_turn_writes_in_the_transaction_of_its_end(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    answer = await streaming_turn(sessions)
    store = TurnStore(sessions, RecordingLog())
    failing = TitleFinisher(wanted=True, fails=True)
    store.finishers.append(failing.finisher())

    # Its write and the end are one transaction: the finisher failing undoes both.
    with pytest.raises(RuntimeError):
        await finish(store, answer, COMPLETE, HOLDER)
    assert failing.written == [answer.id]
    assert (await stored(sessions, answer.id)).status == "streaming"
    assert await title_of(sessions, answer.conversation_id) is None

    titling = TitleFinisher(wanted=True)
    store.finishers[:] = [titling.finisher()]
    # Fenced off, the end writes nothing, and the finisher is not run past it.
    assert await finish(store, answer, COMPLETE, OTHER_REPLICA) is None
    assert titling.written == []
    ended = await finish(store, answer, COMPLETE, HOLDER)
    assert isinstance(ended, m.Message)
    assert ended.status == "complete"
    assert titling.written == [answer.id]
    assert await title_of(sessions, answer.conversation_id) == "Finished"


async def test_a_finisher_that_does_not_want_the_turn_is_not_run(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    answer = await streaming_turn(sessions)
    store = TurnStore(sessions, RecordingLog())
    unwanted = TitleFinisher(wanted=False, fails=True)
    store.finishers.append(unwanted.finisher())

    ended = await finish(store, answer, COMPLETE, HOLDER)
    assert isinstance(ended, m.Message)
    assert unwanted.written == []
    row = await stored(sessions, answer.id)
    assert (row.status, row.content, row.lease_owner) == ("complete", "Blue.", None)
    assert await title_of(sessions, answer.conversation_id) is None
