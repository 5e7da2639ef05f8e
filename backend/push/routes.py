"""``/v1/devices``: where a user's push notifications go."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody

from backend.admission.deps import Creations
from backend.deps import CurrentUser
from backend.errors import NotFound, PayloadTooLarge, RateLimited, Unauthorized, error_responses
from backend.push.deps import Devices
from backend.push.schemas import Device, DeviceList, DeviceRegistration, device_view


class DeviceController(Controller):
    path = "/v1/devices"
    tags = ["Devices"]

    @post(
        "/",
        status_code=201,
        summary="Register this device's push token",
        description=(
            "Call it at every app start and whenever FCM gives the app a new token. A token that is already "
            "registered updates that device (same `id`; `app_version` and `locale` change only when sent) "
            "and moves it to the calling account if another account had it: pushes for the other "
            "account's answers stop going to it. Answers `201` in both cases. `429 rate_limited` past "
            "SURGE_ADMISSION_DEVICES_PER_USER_PER_MIN registrations a minute."
        ),
        responses=error_responses(PayloadTooLarge, Unauthorized, RateLimited),
    )
    async def register(
        self,
        data: JSONBody[DeviceRegistration],
        devices: Devices,
        current_user: CurrentUser,
        creation_limits: Creations,
    ) -> Device:
        await creation_limits.device(current_user.id)
        device = await devices.register(
            current_user.id,
            platform=data.platform,
            push_token=data.push_token,
            app_version=data.app_version,
            locale=data.locale,
        )
        return device_view(device)

    @get(
        "/",
        summary="The devices that get this account's push notifications",
        responses=error_responses(Unauthorized),
    )
    async def list_devices(self, devices: Devices, current_user: CurrentUser) -> DeviceList:
        return DeviceList(data=[device_view(device) for device in await devices.listing(current_user.id)])

    @delete(
        "/{device_id:uuid}",
        status_code=204,
        summary="Stop sending push notifications to a device",
        responses=error_responses(Unauthorized, NotFound),
    )
    async def remove(self, device_id: FromPath[UUID], devices: Devices, current_user: CurrentUser) -> None:
        await devices.remove(current_user.id, device_id)
