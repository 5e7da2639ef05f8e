"""Making, listing and deleting a user's API keys."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.api_keys.keys import KeyHasher, shown_prefix
from backend.api_keys.schemas import ApiKeyView, CreatedApiKey
from backend.db import models as m
from backend.errors import NotFound, ValidationFailed


def check_name(name: str) -> str:
    """A name is shown back in lists: no blank one, no NUL (PostgreSQL's text cannot hold it)."""
    cleaned = name.strip()
    if not cleaned:
        raise ValidationFailed("The key's name is empty.", fields={"name": "must not be blank"})
    if "\x00" in cleaned:
        raise ValidationFailed("The key's name holds a NUL character.", fields={"name": "no U+0000"})
    return cleaned


class ApiKeyService:
    def __init__(self, session: AsyncSession, hasher: KeyHasher) -> None:
        self.session = session
        self.hasher = hasher

    async def create(self, user_id: UUID, name: str) -> CreatedApiKey:
        secret = self.hasher.new_secret()
        key = m.ApiKey(
            user_id=user_id,
            name=check_name(name),
            prefix=shown_prefix(secret),
            key_hash=self.hasher.hash(secret),
        )
        self.session.add(key)
        await self.session.commit()
        return CreatedApiKey(
            id=key.id, name=key.name, prefix=key.prefix, secret=secret, created_at=key.created_at
        )

    async def list(self, user_id: UUID) -> list[ApiKeyView]:
        keys = await self.session.scalars(
            select(m.ApiKey).where(m.ApiKey.user_id == user_id).order_by(m.ApiKey.id)
        )
        return [
            ApiKeyView(
                id=key.id,
                name=key.name,
                prefix=key.prefix,
                created_at=key.created_at,
                last_used_at=key.last_used_at,
            )
            for key in keys
        ]

    async def delete(self, user_id: UUID, key_id: UUID) -> None:
        """Delete one of the user's keys: the next request with it is refused (looked up every time)."""
        result = await self.session.execute(
            delete(m.ApiKey).where(m.ApiKey.id == key_id, m.ApiKey.user_id == user_id)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFound("API key not found.")
        await self.session.commit()
