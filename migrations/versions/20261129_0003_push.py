"""Push: devices, the push outbox and its deliveries, and the Firebase uid of accounts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")


def _id() -> sa.Column[object]:
    return sa.Column("id", GUID(length=16), nullable=False)


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
    ]


def _cascade(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete="CASCADE"
    )


def upgrade() -> None:
    with op.batch_alter_table("user_account") as batch:
        batch.add_column(sa.Column("firebase_uid", sa.String(128), nullable=True))
        batch.create_unique_constraint("uq_user_account_firebase_uid", ["firebase_uid"])

    op.create_table(
        "device",
        _id(),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("push_token", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("app_version", sa.String(50), nullable=True),
        sa.Column("locale", sa.String(35), nullable=True),
        sa.Column("last_seen_at", DateTimeUTC(timezone=True), nullable=False),
        *_timestamps(),
        _cascade("device", "user_id", "user_account"),
        sa.PrimaryKeyConstraint("id", name="pk_device"),
        sa.UniqueConstraint("token_hash", name="uq_device_token_hash"),
    )
    op.create_index("ix_device_user_id", "device", ["user_id"])

    op.create_table(
        "push_outbox",
        _id(),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("conversation_id", GUID(length=16), nullable=False),
        sa.Column("message_id", GUID(length=16), nullable=False),
        *_timestamps(),
        _cascade("push_outbox", "user_id", "user_account"),
        _cascade("push_outbox", "conversation_id", "conversation"),
        _cascade("push_outbox", "message_id", "message"),
        sa.PrimaryKeyConstraint("id", name="pk_push_outbox"),
    )

    op.create_table(
        "push_delivery",
        _id(),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("message_id", GUID(length=16), nullable=False),
        sa.Column("device_id", GUID(length=16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("due_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("claimed_by", GUID(length=16), nullable=True),
        sa.Column("claim_expires_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("enqueued_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sent_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("finished_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(40), nullable=True),
        *_timestamps(),
        _cascade("push_delivery", "user_id", "user_account"),
        _cascade("push_delivery", "message_id", "message"),
        _cascade("push_delivery", "device_id", "device"),
        sa.PrimaryKeyConstraint("id", name="pk_push_delivery"),
        sa.UniqueConstraint("message_id", "device_id", name="uq_push_delivery_message_id"),
    )
    op.create_index("ix_push_delivery_user_id", "push_delivery", ["user_id"])
    op.create_index("ix_push_delivery_device_sent", "push_delivery", ["device_id", "sent_at"])
    op.create_index(
        "ix_push_delivery_due", "push_delivery", ["due_at"], sqlite_where=PENDING, postgresql_where=PENDING
    )


def downgrade() -> None:
    op.drop_table("push_delivery")
    op.drop_table("push_outbox")
    op.drop_table("device")
    with op.batch_alter_table("user_account") as batch:
        batch.drop_constraint("uq_user_account_firebase_uid", type_="unique")
        batch.drop_column("firebase_uid")
