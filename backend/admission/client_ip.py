"""The client's IP address for per-IP limits, believing X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection


class ClientIps:
    """Finds the address a request came from, behind the proxies named in ``SURGE_TRUSTED_PROXIES``."""

    def __init__(self, trusted_proxies: str) -> None:
        self.trusted = frozenset(proxy.strip() for proxy in trusted_proxies.split(",") if proxy.strip())

    def of(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        peer = connection.client.host if connection.client else "unknown"
        if peer not in self.trusted:
            return peer
        forwarded = connection.headers.get("x-forwarded-for", "")
        # Walk from the nearest hop outwards and stop at the first address that is not one of our proxies:
        # everything further left was written by the client and cannot be trusted.
        for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
            if hop not in self.trusted:
                return hop
        return peer
