"""``client.admin``: the operator's routes (tier ``admin`` only; others get ``PermissionDeniedError``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from surge._options import NOT_GIVEN, NotGiven, RequestOptions, Timeout, given
from surge._resource import AsyncAPIResource, SyncAPIResource

__all__ = ["Admin", "AsyncAdmin"]

Headers = Mapping[str, str] | None


def _fleet(timeout: Timeout | NotGiven, headers: Headers) -> RequestOptions:
    return RequestOptions(method="GET", path="/v1/admin/fleet", timeout=timeout, headers=headers)


def _overload(
    level: int | NotGiven | None,
    signups_open: bool | NotGiven | None,
    timeout: Timeout | NotGiven,
    headers: Headers,
) -> RequestOptions:
    body = given(level=level, signups_open=signups_open)
    return RequestOptions(
        method="PUT", path="/v1/admin/overload", body=body, timeout=timeout, headers=headers
    )


class Admin(SyncAPIResource):
    """The fleet's shape is the server's to evolve, so it comes back as plain JSON (a dict)."""

    def fleet(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> dict[str, Any]:
        """``GET /v1/admin/fleet``: every inference worker (health, load, cache hit rate, routing) and the
        admission state (degrade level, queue lengths)."""
        return self._client.request_json(_fleet(timeout, extra_headers), dict[str, Any])

    def override_overload(
        self,
        *,
        level: int | NotGiven | None = NOT_GIVEN,
        signups_open: bool | NotGiven | None = NOT_GIVEN,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> dict[str, Any]:
        """``PUT /v1/admin/overload``: force a degrade ``level`` or open/close sign-ups by hand; ``None``
        hands either back to the automatic policy."""
        return self._client.request_json(
            _overload(level, signups_open, timeout, extra_headers), dict[str, Any]
        )


class AsyncAdmin(AsyncAPIResource):
    """The fleet's shape is the server's to evolve, so it comes back as plain JSON (a dict)."""

    async def fleet(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> dict[str, Any]:
        """``GET /v1/admin/fleet``: every inference worker and the admission state."""
        return await self._client.request_json(_fleet(timeout, extra_headers), dict[str, Any])

    async def override_overload(
        self,
        *,
        level: int | NotGiven | None = NOT_GIVEN,
        signups_open: bool | NotGiven | None = NOT_GIVEN,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> dict[str, Any]:
        """``PUT /v1/admin/overload``: force a degrade ``level`` or sign-ups by hand; ``None`` = automatic."""
        options = _overload(level, signups_open, timeout, extra_headers)
        return await self._client.request_json(options, dict[str, Any])
