"""``client.devices``: register this device for push notifications, list and remove devices."""

from __future__ import annotations

from collections.abc import Mapping

from surge._options import NOT_GIVEN, NotGiven, RequestOptions, Timeout
from surge._pagination import WireList
from surge._resource import AsyncAPIResource, SyncAPIResource, path
from surge._types import Device, Platform

__all__ = ["AsyncDevices", "Devices"]

Headers = Mapping[str, str] | None


def _register(
    platform: Platform,
    push_token: str,
    app_version: str | None,
    locale: str | None,
    timeout: Timeout | NotGiven,
    headers: Headers,
) -> RequestOptions:
    body: dict[str, str] = {"platform": platform, "push_token": push_token}
    if app_version is not None:
        body["app_version"] = app_version
    if locale is not None:
        body["locale"] = locale
    # Registering the same push token again updates the same device: safe to replay.
    return RequestOptions(
        method="POST", path="/v1/devices", body=body, replay_safe=True, timeout=timeout, headers=headers
    )


class Devices(SyncAPIResource):
    def register(
        self,
        platform: Platform,
        push_token: str,
        *,
        app_version: str | None = None,
        locale: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> Device:
        """Register (or update) the device holding ``push_token`` (``POST /v1/devices``); the token itself
        is never returned."""
        options = _register(platform, push_token, app_version, locale, timeout, extra_headers)
        return self._client.request_json(options, Device)

    def list(self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None) -> list[Device]:
        """The account's devices (``GET /v1/devices``)."""
        options = RequestOptions(method="GET", path="/v1/devices", timeout=timeout, headers=extra_headers)
        return self._client.request_json(options, WireList[Device]).data

    def delete(
        self, device_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> None:
        """Stop pushing to a device (``DELETE /v1/devices/{id}``)."""
        options = RequestOptions(
            method="DELETE", path=path("/v1/devices/{}", device_id), timeout=timeout, headers=extra_headers
        )
        self._client.request_none(options)


class AsyncDevices(AsyncAPIResource):
    async def register(
        self,
        platform: Platform,
        push_token: str,
        *,
        app_version: str | None = None,
        locale: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> Device:
        """Register (or update) the device holding ``push_token`` (``POST /v1/devices``)."""
        options = _register(platform, push_token, app_version, locale, timeout, extra_headers)
        return await self._client.request_json(options, Device)

    async def list(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> list[Device]:
        """The account's devices (``GET /v1/devices``)."""
        options = RequestOptions(method="GET", path="/v1/devices", timeout=timeout, headers=extra_headers)
        return (await self._client.request_json(options, WireList[Device])).data

    async def delete(
        self, device_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> None:
        """Stop pushing to a device (``DELETE /v1/devices/{id}``)."""
        options = RequestOptions(
            method="DELETE", path=path("/v1/devices/{}", device_id), timeout=timeout, headers=extra_headers
        )
        await self._client.request_none(options)
