"""``client.me``: the signed-in account, its export, its usage; erasure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from surge._options import NOT_GIVEN, NotGiven, RequestOptions, Timeout, given
from surge._resource import AsyncAPIResource, SyncAPIResource
from surge._types import AccountUsage, User

__all__ = ["AsyncMe", "Me"]

Headers = Mapping[str, str] | None


def _options(
    method: str, path: str, timeout: Timeout | NotGiven, headers: Headers, body: Any = None
) -> RequestOptions:
    return RequestOptions(method=method, path=path, body=body, timeout=timeout, headers=headers)


class Me(SyncAPIResource):
    def get(self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None) -> User:
        """The signed-in user (``GET /v1/me``)."""
        return self._client.request_json(_options("GET", "/v1/me", timeout, extra_headers), User)

    def update(
        self,
        *,
        display_name: str | NotGiven | None = NOT_GIVEN,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> User:
        """Change the profile (``PATCH /v1/me``); ``display_name=None`` clears the name."""
        body = given(display_name=display_name)
        return self._client.request_json(_options("PATCH", "/v1/me", timeout, extra_headers, body), User)

    def delete(self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None) -> None:
        """Erase the account and everything it owns, at once (``DELETE /v1/me``); the session ends."""
        self._client.request_none(_options("DELETE", "/v1/me", timeout, extra_headers))
        self._client.tokens.clear()

    def export(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> dict[str, Any]:
        """Everything the account owns, as one JSON document (``GET /v1/me/export``, GDPR art. 20)."""
        return self._client.request_json(
            _options("GET", "/v1/me/export", timeout, extra_headers), dict[str, Any]
        )

    def usage(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> AccountUsage:
        """The tier's limits, what has been used of them, and when they reset (``GET /v1/me/usage``)."""
        return self._client.request_json(
            _options("GET", "/v1/me/usage", timeout, extra_headers), AccountUsage
        )


class AsyncMe(AsyncAPIResource):
    async def get(self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None) -> User:
        """The signed-in user (``GET /v1/me``)."""
        return await self._client.request_json(_options("GET", "/v1/me", timeout, extra_headers), User)

    async def update(
        self,
        *,
        display_name: str | NotGiven | None = NOT_GIVEN,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> User:
        """Change the profile (``PATCH /v1/me``); ``display_name=None`` clears the name."""
        body = given(display_name=display_name)
        return await self._client.request_json(
            _options("PATCH", "/v1/me", timeout, extra_headers, body), User
        )

    async def delete(self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None) -> None:
        """Erase the account and everything it owns, at once (``DELETE /v1/me``); the session ends."""
        await self._client.request_none(_options("DELETE", "/v1/me", timeout, extra_headers))
        self._client.tokens.clear()

    async def export(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> dict[str, Any]:
        """Everything the account owns, as one JSON document (``GET /v1/me/export``, GDPR art. 20)."""
        return await self._client.request_json(
            _options("GET", "/v1/me/export", timeout, extra_headers), dict[str, Any]
        )

    async def usage(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> AccountUsage:
        """The tier's limits, what has been used of them, and when they reset (``GET /v1/me/usage``)."""
        return await self._client.request_json(
            _options("GET", "/v1/me/usage", timeout, extra_headers), AccountUsage
        )
