"""The base of every resource (``client.auth``, ``client.conversations``, ...) and its path helper."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from surge._base_client import AsyncAPIClient, SyncAPIClient


def path(template: str, *ids: str) -> str:
    """``template`` with each ``{}`` replaced by an id, escaped: ids are opaque and may contain anything."""
    return template.format(*(quote(str(value), safe="") for value in ids))


class SyncAPIResource:
    def __init__(self, client: SyncAPIClient) -> None:
        self._client = client


class AsyncAPIResource:
    def __init__(self, client: AsyncAPIClient) -> None:
        self._client = client
