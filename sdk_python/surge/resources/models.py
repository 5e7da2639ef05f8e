"""``client.models``: the models this Surge serves."""

from __future__ import annotations

from collections.abc import Mapping

from surge._options import NOT_GIVEN, NotGiven, RequestOptions, Timeout
from surge._pagination import WireList
from surge._resource import AsyncAPIResource, SyncAPIResource
from surge._types import Model

__all__ = ["AsyncModels", "Models"]


class Models(SyncAPIResource):
    def list(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Mapping[str, str] | None = None
    ) -> list[Model]:
        """Every model, with whether it thinks and its limits (``GET /v1/models``)."""
        options = RequestOptions(method="GET", path="/v1/models", timeout=timeout, headers=extra_headers)
        return self._client.request_json(options, WireList[Model]).data


class AsyncModels(AsyncAPIResource):
    async def list(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Mapping[str, str] | None = None
    ) -> list[Model]:
        """Every model, with whether it thinks and its limits (``GET /v1/models``)."""
        options = RequestOptions(method="GET", path="/v1/models", timeout=timeout, headers=extra_headers)
        return (await self._client.request_json(options, WireList[Model])).data
