"""Accounts, logins, conversations, the message tree, shares and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[object]:
    return sa.Column("id", GUID(length=16), nullable=False)


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
    ]


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _is_postgresql():
        # A trigram index lets `?q=` substring search skip most messages; pg_trgm is a trusted extension,
        # so the database owner may create it without superuser rights.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    op.create_table(
        "user_account",
        _id(),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("display_name", sa.String(100), nullable=True),
        sa.Column("tier", sa.String(16), server_default="free", nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_user_account"),
        sa.UniqueConstraint("email", name="uq_user_account_email"),
    )

    op.create_table(
        "token_family",
        _id(),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("revoked_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("last_used_at", DateTimeUTC(timezone=True), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name="fk_token_family_user_id_user_account", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_token_family"),
    )
    op.create_index("ix_token_family_user_id", "token_family", ["user_id"])

    op.create_table(
        "refresh_token",
        _id(),
        sa.Column("family_id", GUID(length=16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("spent_at", DateTimeUTC(timezone=True), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["family_id"], ["token_family.id"], name="fk_refresh_token_family_id_token_family", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_token"),
        sa.UniqueConstraint("token_hash", name="uq_refresh_token_token_hash"),
    )
    op.create_index("ix_refresh_token_family_id", "refresh_token", ["family_id"])

    op.create_table(
        "conversation",
        _id(),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("title", sa.String(200), nullable=True),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("pinned", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("archived", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("current_leaf_id", GUID(length=16), nullable=True),
        sa.Column("last_message_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("activity_at", DateTimeUTC(timezone=True), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name="fk_conversation_user_id_user_account", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_conversation"),
    )
    op.create_index(
        "ix_conversation_listing", "conversation", ["user_id", "archived", "pinned", "activity_at", "id"]
    )

    op.create_table(
        "message",
        _id(),
        sa.Column("conversation_id", GUID(length=16), nullable=False),
        sa.Column("parent_id", GUID(length=16), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), server_default="", nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model", sa.String(100), nullable=True),
        sa.Column("finish_reason", sa.String(16), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=True),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("feedback", sa.String(8), nullable=True),
        sa.Column("feedback_comment", sa.Text(), nullable=True),
        sa.Column("completed_at", DateTimeUTC(timezone=True), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name="fk_message_conversation_id_conversation",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["message.id"], name="fk_message_parent_id_message", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_message"),
    )
    op.create_index("ix_message_conversation", "message", ["conversation_id", "id"])
    op.create_index("ix_message_parent_id", "message", ["parent_id"])

    # conversation <-> message reference each other, so this key can only come after both tables.
    with op.batch_alter_table("conversation") as batch:
        batch.create_foreign_key(
            "fk_conversation_current_leaf", "message", ["current_leaf_id"], ["id"], ondelete="SET NULL"
        )

    if _is_postgresql():
        op.create_index(
            "ix_message_content_trgm",
            "message",
            ["content"],
            postgresql_using="gin",
            postgresql_ops={"content": "gin_trgm_ops"},
            postgresql_where=sa.text("status = 'complete'"),
        )

    op.create_table(
        "share",
        _id(),
        sa.Column("conversation_id", GUID(length=16), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("title", sa.String(200), nullable=True),
        sa.Column("messages", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["conversation_id"], ["conversation.id"], name="fk_share_conversation_id_conversation", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"], name="fk_share_user_id_user_account", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_share"),
    )
    op.create_index("ix_share_conversation_id", "share", ["conversation_id"])
    op.create_index("ix_share_user_id", "share", ["user_id"])

    op.create_table(
        "idempotency_key",
        _id(),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("user_message_id", GUID(length=16), nullable=True),
        sa.Column("assistant_message_id", GUID(length=16), nullable=True),
        sa.Column("expires_at", DateTimeUTC(timezone=True), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name="fk_idempotency_key_user_id_user_account", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_message_id"], ["message.id"], name="fk_idempotency_key_user_message_id_message", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["assistant_message_id"],
            ["message.id"],
            name="fk_idempotency_key_assistant_message_id_message",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_idempotency_key"),
        sa.UniqueConstraint("user_id", "scope", "key", name="uq_idempotency_key_user_id"),
    )
    op.create_index("ix_idempotency_key_expires_at", "idempotency_key", ["expires_at"])


def downgrade() -> None:
    op.drop_table("idempotency_key")
    op.drop_table("share")
    with op.batch_alter_table("conversation") as batch:
        batch.drop_constraint("fk_conversation_current_leaf", type_="foreignkey")
    op.drop_table("message")
    op.drop_table("conversation")
    op.drop_table("refresh_token")
    op.drop_table("token_family")
    op.drop_table("user_account")
