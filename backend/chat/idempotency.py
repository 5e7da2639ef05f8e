"""Idempotency-Keys: a retried send (or regeneration) gets back the turn its first attempt created, for 24 h.

A key is stored with its turn, in the turn's own transaction (``remember``), and looked up only when a
request is refused or finds its key taken (``replay``): a first attempt, nearly every request, pays no
lookup. Expired keys are taken over by a request that reuses them, and deleted in the background
(``KeyPurge``), so the table holds about a day of sends.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

import msgspec
from sqlalchemy import Executable, Table, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.db import models as m
from backend.db.base import new_id
from backend.errors import Conflict
from backend.periodic import Periodic

logger = logging.getLogger("surge.chat")

KEY_TTL = timedelta(hours=24)
# Expired keys are deleted this often, this many per statement (each replica purges; they do not collide).
PURGE_INTERVAL_S = 600.0
PURGE_BATCH = 5000

# Where a key is valid (``send:{conversation}`` or ``regenerate:{answer}``), the key, the request's hash.
Idempotency = tuple[str, str | None, str]


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()


async def replay(
    session: AsyncSession, user_id: UUID, idempotency: Idempotency
) -> tuple[m.Message, m.Message] | None:
    """The user message and answer an earlier request with this key created, if any (409 if its body
    differed, or if that turn is gone)."""
    scope, key, fingerprint = idempotency
    if key is None:
        return None
    stored = await session.scalar(
        select(m.IdempotencyKey).where(
            m.IdempotencyKey.user_id == user_id,
            m.IdempotencyKey.scope == scope,
            m.IdempotencyKey.key == key,
            m.IdempotencyKey.expires_at > datetime.now(UTC),
        )
    )
    if stored is None:
        return None
    if stored.request_hash != fingerprint:
        raise Conflict("This Idempotency-Key was already used with a different request.")
    user_message = await session.get(m.Message, stored.user_message_id)
    answer = await session.get(m.Message, stored.assistant_message_id)
    if user_message is None or answer is None:
        raise Conflict("This Idempotency-Key belongs to a turn that no longer exists.")
    return user_message, answer


async def remember(
    session: AsyncSession,
    user_id: UUID,
    idempotency: Idempotency,
    user_message: m.Message,
    answer: m.Message,
    *,
    now: datetime,
) -> bool:
    """Store the key with the turn it created; False if the key is taken (by a request within its 24 h).
    An expired key is taken over in the same statement: reusing a key a day later is a new request."""
    scope, key, fingerprint = idempotency
    stored = await session.execute(
        _REMEMBER[session.get_bind().dialect.name],
        {
            "id": new_id(),
            "user_id": user_id,
            "scope": scope,
            "key": key,
            "request_hash": fingerprint,
            "user_message_id": user_message.id,
            "assistant_message_id": answer.id,
            "expires_at": now + KEY_TTL,
            "now": now,
        },
    )
    return stored.first() is not None


def _remember_statement(insert: Callable[[Table], Any]) -> Executable:
    """INSERT ... ON CONFLICT (user, scope, key) DO UPDATE only where the stored key expired, in a
    dialect's spelling, with every value bound: built once (every turn sent with a key runs it)."""
    keys = cast("Table", m.IdempotencyKey.__table__)
    new_key = insert(keys).values(
        id=bindparam("id"),
        user_id=bindparam("user_id"),
        scope=bindparam("scope"),
        key=bindparam("key"),
        request_hash=bindparam("request_hash"),
        user_message_id=bindparam("user_message_id"),
        assistant_message_id=bindparam("assistant_message_id"),
        expires_at=bindparam("expires_at"),
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    replaced = ("request_hash", "user_message_id", "assistant_message_id", "expires_at", "created_at")
    return cast(
        "Executable",
        new_key.on_conflict_do_update(
            index_elements=["user_id", "scope", "key"],
            set_={column: new_key.excluded[column] for column in (*replaced, "updated_at")},
            where=keys.c.expires_at <= bindparam("now"),
        ).returning(keys.c.id),
    )


_REMEMBER = {
    "postgresql": _remember_statement(postgresql.insert),
    "sqlite": _remember_statement(sqlite.insert),
}


class KeyPurge:
    """Deletes expired keys every ``PURGE_INTERVAL_S``, a batch per transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._periodic = Periodic(
            "surge-idempotency-purge",
            PURGE_INTERVAL_S,
            self.purge,
            logger=logger,
            failure="deleting expired Idempotency-Keys failed; retrying next interval",
        )

    async def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def purge(self) -> None:
        await self.purge_expired()

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Delete the keys expired at ``now``; how many there were."""
        now = now or datetime.now(UTC)
        deleted = 0
        while True:
            expired = select(m.IdempotencyKey.id).where(m.IdempotencyKey.expires_at <= now).limit(PURGE_BATCH)
            async with self.sessions() as session:
                result = await session.execute(
                    delete(m.IdempotencyKey).where(m.IdempotencyKey.id.in_(expired.scalar_subquery()))
                )
                await session.commit()
            batch = int(getattr(result, "rowcount", 0) or 0)
            deleted += batch
            if batch < PURGE_BATCH:
                return deleted
