"""Conversation logic without HTTP: ownership, listing and search, branch selection, shares."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from sqlalchemy import and_, bindparam, delete, exists, false, or_, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from backend.conversations.tree import MessageTree
from backend.db import models as m
from backend.errors import NotFound, ValidationFailed
from backend.pagination import AwareDatetime, decode_cursor, encode_cursor, in_utc
from backend.settings import InferenceSettings

# Messages a share or a search may show: finished text only, never a half-streamed answer.
SHAREABLE_STATUSES = ("complete", "cancelled")


def like_pattern(query: str) -> str:
    """``%query%`` with LIKE's wildcards in the user's text taken literally."""
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def matches(query: str) -> ColumnElement[bool]:
    """Conversations whose title or finished message text contains ``query``, ignoring case.

    On PostgreSQL the message side uses the trigram GIN index (it can serve ILIKE '%...%'); titles are
    filtered while walking the user's own conversations. On SQLite both are scans.
    """
    pattern = like_pattern(query)
    in_messages = exists().where(
        m.Message.conversation_id == m.Conversation.id,
        # A literal, so PostgreSQL can match the partial index's predicate when planning.
        text("message.status = 'complete'"),
        m.Message.content.ilike(pattern, escape="\\"),
    )
    return or_(m.Conversation.title.ilike(pattern, escape="\\"), in_messages)


@runtime_checkable
class LiveAnswers(Protocol):
    """Fills in the text generated so far of an answer that is still streaming (its row holds the text
    only once the answer ends). The chat domain provides it; conversations do not know how turns run."""

    async def with_live_text(self, message: m.Message) -> m.Message: ...


# Every turn and most reads start here: built once, so that SQLAlchemy memoizes their cache keys.
_OWNED = select(m.Conversation).where(
    m.Conversation.id == bindparam("conversation_id"), m.Conversation.user_id == bindparam("user_id")
)
_OWNED_LOCKING_USER = _OWNED.join(m.User, m.User.id == m.Conversation.user_id).with_for_update(of=m.User)


class ConversationService:
    """One request's view of a user's conversations; commits its own writes."""

    def __init__(
        self, session: AsyncSession, inference: InferenceSettings, live: LiveAnswers | None = None
    ) -> None:
        self.session = session
        self.inference = inference
        self.tree = MessageTree(session)
        self.live = live

    async def _as_read(self, messages: list[m.Message]) -> list[m.Message]:
        """Messages as a reader sees them: a streaming answer with its text so far."""
        if self.live is None:
            return messages
        shown = []
        for message in messages:
            if message.status in m.ACTIVE_STATUSES:
                self.session.expunge(message)  # the live text must never be flushed into the row
                message = await self.live.with_live_text(message)
            shown.append(message)
        return shown

    async def owned(self, user_id: UUID, conversation_id: UUID, *, lock_user: bool = False) -> m.Conversation:
        """The conversation if this user owns it; someone else's is indistinguishable from none.

        ``lock_user``: on PostgreSQL, also lock the user's row until the transaction ends (in the same
        statement): accepting a turn holds it, so that replicas cannot race the user's concurrency cap."""
        locking = lock_user and self.session.get_bind().dialect.name == "postgresql"
        conversation = await self.session.scalar(
            _OWNED_LOCKING_USER if locking else _OWNED,
            {"user_id": user_id, "conversation_id": conversation_id},
        )
        if conversation is None:
            raise NotFound("Conversation not found.")
        return conversation

    def check_model(self, model: str | None) -> str:
        if model is None:
            return self.inference.default.id
        if self.inference.model(model) is None:
            raise ValidationFailed("Unknown model.", fields={"model": f"not one of GET /v1/models: {model}"})
        return model

    async def create(self, user_id: UUID, *, title: str | None, model: str | None) -> m.Conversation:
        conversation = m.Conversation(user_id=user_id, title=title, model=self.check_model(model))
        self.session.add(conversation)
        await self.session.commit()
        return conversation

    async def listing(
        self, user_id: UUID, *, archived: bool, query: str | None, limit: int, cursor: str | None
    ) -> tuple[list[m.Conversation], str | None]:
        """Pinned first, then most recent activity; keyset-paginated on (pinned, activity_at, id)."""
        c = m.Conversation
        statement = select(c).where(c.user_id == user_id, c.archived == (true() if archived else false()))
        if query:
            statement = statement.where(matches(query))
        if cursor:
            pinned, activity, after_id = decode_cursor(cursor, tuple[bool, AwareDatetime, UUID])
            activity_at = in_utc(activity)
            later_in_group = or_(
                c.activity_at < activity_at, and_(c.activity_at == activity_at, c.id < after_id)
            )
            # Pinned conversations come first: after a pinned one, the rest of the pinned group and then
            # every unpinned one; after an unpinned one, only the rest of the unpinned group.
            if pinned:
                statement = statement.where(
                    or_(c.pinned == false(), and_(c.pinned == true(), later_in_group))
                )
            else:
                statement = statement.where(c.pinned == false(), later_in_group)
        statement = statement.order_by(c.pinned.desc(), c.activity_at.desc(), c.id.desc()).limit(limit + 1)
        rows = list(await self.session.scalars(statement))
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor([last.pinned, last.activity_at.isoformat(), str(last.id)])
        return rows, next_cursor

    async def with_branch(
        self, user_id: UUID, conversation_id: UUID
    ) -> tuple[m.Conversation, list[m.Message]]:
        conversation = await self.owned(user_id, conversation_id)
        return conversation, await self.tree.current_branch(conversation)

    async def detail(self, user_id: UUID, conversation_id: UUID) -> tuple[m.Conversation, list[m.Message]]:
        """The conversation and its current branch as a reader sees it (streaming text filled in)."""
        conversation, branch = await self.with_branch(user_id, conversation_id)
        return conversation, await self._as_read(branch)

    async def update(self, user_id: UUID, conversation_id: UUID, changes: dict[str, Any]) -> m.Conversation:
        conversation = await self.owned(user_id, conversation_id)
        if "current_leaf_id" in changes:
            leaf = await self.tree.latest_leaf_under(conversation.id, changes.pop("current_leaf_id"))
            if leaf is None:
                raise ValidationFailed(
                    "No such message in this conversation.",
                    fields={"current_leaf_id": "not in this conversation"},
                )
            conversation.current_leaf_id = leaf
        for name in ("title", "pinned", "archived"):
            if name in changes:
                setattr(conversation, name, changes[name])
        conversation.updated_at = datetime.now(UTC)
        await self.session.commit()
        return conversation

    async def delete(self, user_id: UUID, conversation_id: UUID) -> None:
        conversation = await self.owned(user_id, conversation_id)
        await self.session.delete(conversation)
        await self.session.commit()

    async def messages(
        self, user_id: UUID, conversation_id: UUID, *, limit: int, cursor: str | None
    ) -> tuple[list[m.Message], str | None]:
        """Every message of the tree, oldest first (ids are time-ordered UUIDv7)."""
        await self.owned(user_id, conversation_id)
        statement = select(m.Message).where(m.Message.conversation_id == conversation_id)
        if cursor:
            (after,) = decode_cursor(cursor, tuple[UUID])
            statement = statement.where(m.Message.id > after)
        rows = list(await self.session.scalars(statement.order_by(m.Message.id).limit(limit + 1)))
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor([str(rows[-1].id)])
        return await self._as_read(rows), next_cursor

    async def share(self, user_id: UUID, conversation_id: UUID) -> m.Share:
        """Freeze the current branch as it is now; later edits never reach the share."""
        conversation, branch = await self.with_branch(user_id, conversation_id)
        snapshot = [
            {"role": message.role, "content": message.content, "created_at": message.created_at.isoformat()}
            for message in branch
            if message.status in SHAREABLE_STATUSES
        ]
        share = m.Share(
            conversation_id=conversation.id, user_id=user_id, title=conversation.title, messages=snapshot
        )
        self.session.add(share)
        await self.session.commit()
        return share

    async def shared(self, share_id: UUID) -> m.Share:
        share = await self.session.get(m.Share, share_id)
        if share is None:
            raise NotFound("Share not found.")
        return share

    async def unshare(self, user_id: UUID, share_id: UUID) -> None:
        result = await self.session.execute(
            delete(m.Share).where(m.Share.id == share_id, m.Share.user_id == user_id)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound("Share not found.")
        await self.session.commit()
