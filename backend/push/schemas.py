"""Request and response shapes of ``/v1/devices`` (API.md, "Devices")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from backend.db import models as m

Platform = Literal["ios", "android", "web"]
PushToken = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=4096,
        description="The FCM registration token of the app on this device. Write-only: never returned.",
    ),
]
AppVersion = Annotated[str, msgspec.Meta(min_length=1, max_length=50, examples=["2.4.1 (311)"])]
Locale = Annotated[str, msgspec.Meta(min_length=1, max_length=35, examples=["en-US"])]


class DeviceRegistration(msgspec.Struct):
    """Registering a token that is already known updates that device (and moves it to this account)."""

    platform: Platform
    push_token: PushToken
    app_version: AppVersion | None = None
    locale: Locale | None = None


class Device(msgspec.Struct):
    """A device that receives push notifications; its push token is never returned."""

    id: UUID
    platform: Platform
    app_version: str | None
    locale: str | None
    created_at: datetime
    last_seen_at: datetime


class DeviceList(msgspec.Struct):
    data: list[Device]


def device_view(device: m.Device) -> Device:
    return Device(
        id=device.id,
        platform=device.platform,  # type: ignore[arg-type]
        app_version=device.app_version,
        locale=device.locale,
        created_at=device.created_at,
        last_seen_at=device.last_seen_at,
    )
