"""Streams without rewrites: a finished answer keeps its event log's layout, streaming text is checkpointed
as appended chunks, and a turn's lease is its replica's heartbeat.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("event_layout", sa.LargeBinary(), nullable=True))
        batch.drop_column("lease_expires_at")
    op.create_table(
        "message_chunk",
        sa.Column("message_id", GUID(length=16), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("layout", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["message.id"], name="fk_message_chunk_message_id_message", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("message_id", "last_seq", name="pk_message_chunk"),
    )


def downgrade() -> None:
    op.drop_table("message_chunk")
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("lease_expires_at", DateTimeUTC(timezone=True), nullable=True))
        batch.drop_column("event_layout")
