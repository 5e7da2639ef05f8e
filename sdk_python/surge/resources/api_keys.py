"""``client.api_keys``: keys for Surge's OpenAI-compatible API (``/openai/v1``), for any OpenAI client."""

from __future__ import annotations

from collections.abc import Mapping

from surge._options import NOT_GIVEN, NotGiven, RequestOptions, Timeout
from surge._pagination import WireList
from surge._resource import AsyncAPIResource, SyncAPIResource, path
from surge._types import ApiKey, CreatedApiKey

__all__ = ["ApiKeys", "AsyncApiKeys"]

Headers = Mapping[str, str] | None
PATH = "/v1/me/api_keys"


def _create(name: str, timeout: Timeout | NotGiven, headers: Headers) -> RequestOptions:
    # Not replayed on a lost answer: a retry would make a second key, and the first one's secret is gone.
    return RequestOptions(method="POST", path=PATH, body={"name": name}, timeout=timeout, headers=headers)


def _list(timeout: Timeout | NotGiven, headers: Headers) -> RequestOptions:
    return RequestOptions(method="GET", path=PATH, timeout=timeout, headers=headers)


def _delete(key_id: str, timeout: Timeout | NotGiven, headers: Headers) -> RequestOptions:
    return RequestOptions(method="DELETE", path=path(PATH + "/{}", key_id), timeout=timeout, headers=headers)


class ApiKeys(SyncAPIResource):
    def create(
        self, name: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> CreatedApiKey:
        """Make a key (``POST /v1/me/api_keys``); its ``secret`` is in this answer only."""
        return self._client.request_json(_create(name, timeout, extra_headers), CreatedApiKey)

    def list(self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None) -> list[ApiKey]:
        """The account's keys, without their secrets (``GET /v1/me/api_keys``)."""
        return self._client.request_json(_list(timeout, extra_headers), WireList[ApiKey]).data

    def delete(
        self, key_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> None:
        """Delete a key; it stops working at once (``DELETE /v1/me/api_keys/{id}``)."""
        self._client.request_none(_delete(key_id, timeout, extra_headers))


class AsyncApiKeys(AsyncAPIResource):
    async def create(
        self, name: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> CreatedApiKey:
        """Make a key (``POST /v1/me/api_keys``); its ``secret`` is in this answer only."""
        return await self._client.request_json(_create(name, timeout, extra_headers), CreatedApiKey)

    async def list(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> list[ApiKey]:
        """The account's keys, without their secrets (``GET /v1/me/api_keys``)."""
        return (await self._client.request_json(_list(timeout, extra_headers), WireList[ApiKey])).data

    async def delete(
        self, key_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> None:
        """Delete a key; it stops working at once (``DELETE /v1/me/api_keys/{id}``)."""
        await self._client.request_none(_delete(key_id, timeout, extra_headers))
