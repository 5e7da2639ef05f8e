"""The push domain's Litestar provider: the device service of a request."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide

from backend.deps import DbSession
from backend.push.service import DeviceService


def provide_device_service(db_session: DbSession) -> DeviceService:
    return DeviceService(db_session)


def push_providers() -> dict[str, Provide]:
    return {"devices": Provide(provide_device_service, sync_to_thread=False)}


Devices = NamedDependency[DeviceService]
