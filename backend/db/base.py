"""The declarative base every Surge table derives from: UUIDv7 ids and UTC audit timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from advanced_alchemy.base import CommonTableAttributes, create_registry
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from uuid_utils.compat import uuid7


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> UUID:
    """A UUIDv7: time-ordered and monotonic within a process, so ``ORDER BY id`` is creation order."""
    return uuid7()


class Base(CommonTableAttributes, AsyncAttrs, DeclarativeBase):
    """Our own registry (GUID and tz-aware datetime mappings from Advanced Alchemy, nothing else in it)."""

    __abstract__ = True
    registry = create_registry()

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id, sort_order=-100)
    # Timestamps come from Python, not the database: PostgreSQL's now() is the transaction's start time,
    # which would give a turn's user and assistant messages the same instant.
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=3000)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, sort_order=3001)


metadata = Base.metadata
