"""The user behind an API key: looked up on every request, so a deleted key or account stops at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.api_keys.keys import KeyHasher, looks_like_key
from backend.db import models as m
from backend.errors import Unauthorized

# last_used_at is a hint for the user, not an audit log: written at most this often per key, so that a
# busy key costs one write a minute rather than one per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_KEY_OWNER = (
    select(
        m.ApiKey.id.label("key_id"),
        m.ApiKey.last_used_at,
        m.User.id,
        m.User.email,
        m.User.display_name,
        m.User.tier,
        m.User.created_at,
    )
    .join(m.User, m.User.id == m.ApiKey.user_id)
    .where(m.ApiKey.key_hash == bindparam("key_hash"))
)
_TOUCH = update(m.ApiKey).where(m.ApiKey.id == bindparam("key_id")).values(last_used_at=bindparam("now"))


class KeyAuthenticator:
    def __init__(self, hasher: KeyHasher, engine: AsyncEngine) -> None:
        self.hasher = hasher
        # One read without a transaction around it, as for access tokens (backend.accounts.auth).
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def user(self, token: str | None) -> tuple[m.User, UUID]:
        """The key's user and the key's id; 401 for anything that is not a live key."""
        if not token or not looks_like_key(token):
            raise Unauthorized("Invalid API key.")
        now = datetime.now(UTC)
        async with self.engine.connect() as connection:
            row = (await connection.execute(_KEY_OWNER, {"key_hash": self.hasher.hash(token)})).first()
            if row is None:
                raise Unauthorized("Invalid API key.")
            last_used = row.last_used_at
            if last_used is not None and last_used.tzinfo is None:
                last_used = last_used.replace(tzinfo=UTC)
            if last_used is None or now - last_used >= LAST_USED_RESOLUTION:
                await connection.execute(_TOUCH, {"key_id": row.key_id, "now": now})
        user = m.User(
            id=row.id,
            email=row.email,
            display_name=row.display_name,
            tier=row.tier,
            created_at=row.created_at,
        )
        return user, row.key_id
