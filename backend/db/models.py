"""Surge's tables: accounts and their logins, conversations, the message tree, shares, idempotency keys,
replicas, push devices and the push outbox, API keys and the usage of the OpenAI-compatible API."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.types import GUID
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.db.base import Base, utcnow


def postgresql_only(index: Index) -> Index:
    """An index created on PostgreSQL only (trigram search needs the pg_trgm extension)."""
    index.info["postgresql_only"] = True
    return index.ddl_if(dialect="postgresql")


class User(Base):
    __tablename__ = "user_account"

    # Stored normalised (lower-cased); nullable because phone and some Apple sign-ins carry no email.
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(100))
    tier: Mapped[str] = mapped_column(String(16), default="free", server_default="free")
    # The Firebase Auth uid this account signs in as (POST /v1/auth/firebase); accounts are linked by it
    # and never by email alone.
    firebase_uid: Mapped[str | None] = mapped_column(String(128), unique=True)


class TokenFamily(Base):
    """One login: every refresh token rotated out of it shares the family, and revoking it ends them all."""

    __tablename__ = "token_family"

    user_id: Mapped[UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)


class RefreshToken(Base):
    __tablename__ = "refresh_token"

    family_id: Mapped[UUID] = mapped_column(ForeignKey("token_family.id", ondelete="CASCADE"), index=True)
    # SHA-256 of the opaque token: a leaked table cannot be replayed.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    # Set when the token is exchanged; presenting it again is reuse and revokes the family.
    spent_at: Mapped[datetime | None]


class Conversation(Base):
    __tablename__ = "conversation"
    __table_args__ = (
        # The conversation list: one user's, archived or not, pinned first, most recent activity first.
        # Search (?q=) walks this too and filters titles: a user has hundreds of conversations, not millions.
        Index("ix_conversation_listing", "user_id", "archived", "pinned", "activity_at", "id"),
    )

    user_id: Mapped[UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    title: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(100))
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # The leaf the client selected; NULL means "the most recently created message" (always a leaf).
    current_leaf_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("message.id", ondelete="SET NULL", use_alter=True, name="fk_conversation_current_leaf")
    )
    last_message_at: Mapped[datetime | None]
    # last_message_at, or created_at before the first message: the list's sort key, never NULL so that
    # keyset pagination can compare it.
    activity_at: Mapped[datetime] = mapped_column(default=utcnow)


# A turn's answer is being generated while its message has one of these statuses.
ACTIVE_STATUSES = ("queued", "streaming")


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (
        # Current branch and whole-tree listing: a conversation's messages in id (= creation) order.
        Index("ix_message_conversation", "conversation_id", "id"),
        # Turns in flight: the per-user concurrency cap and the lease sweeper read only these rows.
        Index(
            "ix_message_active",
            "conversation_id",
            sqlite_where=text("status IN ('queued', 'streaming')"),
            postgresql_where=text("status IN ('queued', 'streaming')"),
        ),
        # Search over finished message text; partial so that streaming checkpoints do not churn the index.
        postgresql_only(
            Index(
                "ix_message_content_trgm",
                "content",
                postgresql_using="gin",
                postgresql_ops={"content": "gin_trgm_ops"},
                postgresql_where=text("status = 'complete'"),
            )
        ),
    )

    conversation_id: Mapped[UUID] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    parent_id: Mapped[UUID | None] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="", server_default="")
    reasoning: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(100))
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    # The error event's ``retry_after_s``, so that replaying the event from this row gives the same one.
    error_retry_after_s: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    reasoning_tokens: Mapped[int | None] = mapped_column(Integer)
    cached_tokens: Mapped[int | None] = mapped_column(Integer)
    feedback: Mapped[str | None] = mapped_column(String(8))
    feedback_comment: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None]

    # --- the turn an assistant message is the answer of ---
    # Whether reasoning was asked for (after the overload policy had its say).
    thinking: Mapped[bool | None] = mapped_column(Boolean)
    # Output budget sent upstream (the overload policy may shorten it).
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    # The SGLang worker that served it, and when it was admitted and produced its first token.
    worker: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime | None]
    first_token_at: Mapped[datetime | None]
    # Upstream attempts so far (a worker failing before the first token is retried elsewhere).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The replica generating it. The claim holds while that replica's heartbeat does (``replica``): a
    # surviving replica fails (or re-runs, if nothing had been streamed) a turn whose replica went silent.
    lease_owner: Mapped[UUID | None]
    # A finished answer's event log, compactly (backend.chat.layout): with the text it replays the log
    # exactly, seq for seq, after the live log is gone.
    event_layout: Mapped[bytes | None] = mapped_column(LargeBinary)

    conversation: Mapped[Conversation] = relationship(lazy="raise", foreign_keys=[conversation_id])


# A streaming answer's text, checkpointed as appended pieces (each with the layout of the events it covers)
# rather than rewritten whole: written only while the event log is not shared (embedded) or not reachable
# (Redis down), and deleted when the answer is stored whole.
message_chunk = Table(
    "message_chunk",
    Base.metadata,
    Column("message_id", GUID(length=16), ForeignKey("message.id", ondelete="CASCADE"), nullable=False),
    Column("last_seq", Integer, nullable=False),
    Column("content", Text, nullable=False),
    Column("reasoning", Text, nullable=False),
    Column("layout", LargeBinary, nullable=False),
    PrimaryKeyConstraint("message_id", "last_seq", name="pk_message_chunk"),
)


class Share(Base):
    """A frozen copy of a conversation's current branch, readable by anyone with its id."""

    __tablename__ = "share"

    conversation_id: Mapped[UUID] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    title: Mapped[str | None] = mapped_column(String(200))
    # [{"role", "content", "created_at"}]: a snapshot, so later edits and deletions do not leak in.
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class IdempotencyKey(Base):
    """A client's ``Idempotency-Key`` for one route, and the turn it created."""

    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("user_id", "scope", "key"),)

    user_id: Mapped[UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the canonical request body: the same key with another body is a conflict.
    request_hash: Mapped[str] = mapped_column(String(64))
    user_message_id: Mapped[UUID | None] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"))
    assistant_message_id: Mapped[UUID | None] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Replica(Base):
    """A running backend process: its heartbeat keeps its turn leases alive and tells an embedded
    process started without Redis that another one already serves this database."""

    __tablename__ = "replica"

    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    shared_broker: Mapped[bool] = mapped_column(Boolean)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


# --- push: devices and the outbox (backend/push) ---


class Device(Base):
    """A phone or browser that gets "answer ready" notifications through FCM."""

    __tablename__ = "device"

    user_id: Mapped[UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    # The FCM registration token: write-only in the API and never logged.
    push_token: Mapped[str] = mapped_column(Text)
    # SHA-256 of push_token, the unique key: PostgreSQL cannot index values as long as a token may be.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    app_version: Mapped[str | None] = mapped_column(String(50))
    locale: Mapped[str | None] = mapped_column(String(35))
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class PushOutbox(Base):
    """A finished answer whose owner should be told, written in the same transaction as the answer.

    The dispatcher turns each row into one :class:`PushDelivery` per device of the user, and deletes it.
    """

    __tablename__ = "push_outbox"

    user_id: Mapped[UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    conversation_id: Mapped[UUID] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    message_id: Mapped[UUID] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"))


class PushDelivery(Base):
    """One finished answer to one device: claimed by one dispatcher at a time, sent at most once."""

    __tablename__ = "push_delivery"
    __table_args__ = (
        # One completion reaches one device once, however many times it was enqueued or claimed.
        UniqueConstraint("message_id", "device_id"),
        # What a dispatcher claims: pending pushes by due time.
        Index(
            "ix_push_delivery_due",
            "due_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        # The per-device rate limit counts a device's recent sends.
        Index("ix_push_delivery_device_sent", "device_id", "sent_at"),
    )

    # The answer's owner when it finished: a device that has since moved to another account is skipped.
    user_id: Mapped[UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[UUID] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"))
    device_id: Mapped[UUID] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"))
    # pending -> sent | failed | dropped
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The dispatcher holding it, until when: a crashed dispatcher's claims lapse and another takes them.
    claimed_by: Mapped[UUID | None]
    claim_expires_at: Mapped[datetime | None]
    # When the answer finished: the push is dropped once it is older than SURGE_PUSH_TTL_S.
    enqueued_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # The last FCM outcome, as a code (``unavailable``, ``unregistered``, ...): never message text.
    outcome: Mapped[str | None] = mapped_column(String(40))


# --- API keys and the OpenAI-compatible API (backend/api_keys, backend/openai_api) ---


class ApiKey(Base):
    """A user's key for the OpenAI-compatible API: only a keyed hash of its secret is kept."""

    __tablename__ = "api_key"

    user_id: Mapped[UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The secret's first characters, shown in lists so a user can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(24))
    # HMAC-SHA256 of the secret under a server secret (hex): a leaked table alone cannot be replayed.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last_used_at: Mapped[datetime | None]


class ApiUsage(Base):
    """One request of the OpenAI-compatible API, counted in the tier's quota window like a turn.

    Not tied to its key: deleting a key and making another must not reset the quota."""

    __tablename__ = "api_usage"
    __table_args__ = (Index("ix_api_usage_user_created", "user_id", "created_at"),)

    user_id: Mapped[UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(100))
    # complete | cancelled | failed (a failed request does not count, as for turns)
    status: Mapped[str] = mapped_column(String(16))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
