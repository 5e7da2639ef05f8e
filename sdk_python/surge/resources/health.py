"""``client.health``: the operations routes (liveness, readiness, metrics, the OpenAPI document)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from surge._options import NOT_GIVEN, NotGiven, RequestOptions, Timeout
from surge._resource import AsyncAPIResource, SyncAPIResource
from surge._types import Health, Readiness

__all__ = ["AsyncHealthChecks", "HealthChecks"]

Headers = Mapping[str, str] | None


def _public(path: str, timeout: Timeout | NotGiven, headers: Headers, **kw: Any) -> RequestOptions:
    return RequestOptions(
        method="GET", path=path, authenticated=False, timeout=timeout, headers=headers, **kw
    )


def _ready(timeout: Timeout | NotGiven, headers: Headers) -> RequestOptions:
    # A replica that is not ready answers 503 with its checks: an answer to report, not a failure to retry.
    return RequestOptions(
        method="GET",
        path="/readyz",
        authenticated=False,
        ok_statuses=frozenset({503}),
        timeout=timeout,
        headers=headers,
    )


class HealthChecks(SyncAPIResource):
    def alive(self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None) -> Health:
        """``GET /healthz``: the process answers."""
        return self._client.request_json(_public("/healthz", timeout, extra_headers), Health)

    def ready(self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None) -> Readiness:
        """``GET /readyz``: database, Redis and inference workers reachable; ``.ready`` and ``.checks``."""
        return self._client.request_json(_ready(timeout, extra_headers), Readiness)

    def metrics(self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None) -> str:
        """``GET /metrics``: the Prometheus text exposition."""
        return self._client.request(_public("/metrics", timeout, extra_headers)).text

    def openapi(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> dict[str, Any]:
        """``GET /schema/openapi.json``: the OpenAPI 3.1 document of this server."""
        options = _public("/schema/openapi.json", timeout, extra_headers)
        return self._client.request_json(options, dict[str, Any])


class AsyncHealthChecks(AsyncAPIResource):
    async def alive(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> Health:
        """``GET /healthz``: the process answers."""
        return await self._client.request_json(_public("/healthz", timeout, extra_headers), Health)

    async def ready(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> Readiness:
        """``GET /readyz``: database, Redis and inference workers reachable; ``.ready`` and ``.checks``."""
        return await self._client.request_json(_ready(timeout, extra_headers), Readiness)

    async def metrics(self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None) -> str:
        """``GET /metrics``: the Prometheus text exposition."""
        return (await self._client.request(_public("/metrics", timeout, extra_headers))).text

    async def openapi(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> dict[str, Any]:
        """``GET /schema/openapi.json``: the OpenAPI 3.1 document of this server."""
        options = _public("/schema/openapi.json", timeout, extra_headers)
        return await self._client.request_json(options, dict[str, Any])
