"""Turns: generation state of assistant messages, leases, and the replicas holding them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("status IN ('queued', 'streaming')")


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("thinking", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("max_tokens", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("worker", sa.String(255), nullable=True))
        batch.add_column(sa.Column("started_at", DateTimeUTC(timezone=True), nullable=True))
        batch.add_column(sa.Column("first_token_at", DateTimeUTC(timezone=True), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("lease_owner", GUID(length=16), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", DateTimeUTC(timezone=True), nullable=True))
    op.create_index(
        "ix_message_active", "message", ["conversation_id"], sqlite_where=ACTIVE, postgresql_where=ACTIVE
    )
    op.create_table(
        "replica",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("shared_broker", sa.Boolean(), nullable=False),
        sa.Column("heartbeat_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_replica"),
    )
    op.create_index("ix_replica_heartbeat_at", "replica", ["heartbeat_at"])


def downgrade() -> None:
    op.drop_table("replica")
    op.drop_index("ix_message_active", table_name="message")
    with op.batch_alter_table("message") as batch:
        for column in (
            "lease_expires_at", "lease_owner", "attempts", "first_token_at", "started_at", "worker",
            "max_tokens", "thinking",
        ):
            batch.drop_column(column)
