"""The client's IP address for per-IP limits, believing X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection


def client_ip(connection: ASGIConnection[Any, Any, Any, Any], trusted_proxies: frozenset[str]) -> str:
    peer = connection.client.host if connection.client else "unknown"
    if peer not in trusted_proxies:
        return peer
    forwarded = connection.headers.get("x-forwarded-for", "")
    # Walk from the nearest hop outwards and stop at the first address that is not one of our proxies:
    # everything further left was written by the client and cannot be trusted.
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        if hop not in trusted_proxies:
            return hop
    return peer
