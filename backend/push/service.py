"""Device logic without HTTP: register (or move) a push token, list and remove a user's devices."""

from __future__ import annotations

import hashlib
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db import models as m
from backend.db.base import utcnow
from backend.errors import NotFound


def hash_push_token(push_token: str) -> str:
    return hashlib.sha256(push_token.encode()).hexdigest()


class DeviceService:
    """One request's view of a user's devices; commits its own writes."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def register(
        self,
        user_id: UUID,
        *,
        platform: str,
        push_token: str,
        app_version: str | None,
        locale: str | None,
    ) -> m.Device:
        """The device with this push token, created or updated, and owned by ``user_id`` from now on."""
        token_hash = hash_push_token(push_token)
        device = await self._by_token(token_hash)
        if device is None:
            device = m.Device(
                user_id=user_id,
                platform=platform,
                push_token=push_token,
                token_hash=token_hash,
                app_version=app_version,
                locale=locale,
            )
            self.session.add(device)
            try:
                await self.session.commit()
                return device
            except IntegrityError:  # the same token registered twice at once: update the winner's row
                await self.session.rollback()
                device = await self._by_token(token_hash)
                if device is None:
                    raise
        if device.user_id != user_id:
            # The phone changed accounts: what the previous account's answers still owe it is not this
            # account's to receive.
            await self.session.execute(
                delete(m.PushDelivery).where(
                    m.PushDelivery.device_id == device.id, m.PushDelivery.status == "pending"
                )
            )
            device.user_id = user_id
        device.platform = platform
        if app_version is not None:
            device.app_version = app_version
        if locale is not None:
            device.locale = locale
        device.last_seen_at = utcnow()
        await self.session.commit()
        return device

    async def _by_token(self, token_hash: str) -> m.Device | None:
        return await self.session.scalar(select(m.Device).where(m.Device.token_hash == token_hash))

    async def listing(self, user_id: UUID) -> list[m.Device]:
        return list(
            await self.session.scalars(
                select(m.Device).where(m.Device.user_id == user_id).order_by(m.Device.id)
            )
        )

    async def remove(self, user_id: UUID, device_id: UUID) -> None:
        """Forget a device (its pending pushes go with it); someone else's is indistinguishable from none."""
        result = await self.session.execute(
            delete(m.Device).where(m.Device.id == device_id, m.Device.user_id == user_id)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound("Device not found.")
        await self.session.commit()
