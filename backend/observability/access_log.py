"""One log line per HTTP request: method, route template, status, duration, request id. No bodies,
no query strings (a search term is user content), no headers (they carry tokens)."""

from __future__ import annotations

import logging
import time

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from backend.observability.request_id import request_id_of

logger = logging.getLogger("surge.access")
_STARTED = "surge_started"


def timing_middleware(app: ASGIApp) -> ASGIApp:
    """Notes when the request arrived; the first of the app's middleware, so it sees every request."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})[_STARTED] = time.perf_counter()
        await app(scope, receive, send)

    return middleware


async def log_response(message: Message, scope: Scope) -> None:
    """A ``before_send`` hook: logs when the response starts (for a stream: when it opens)."""
    if message["type"] != "http.response.start" or not logger.isEnabledFor(logging.INFO):
        return
    started = scope.get("state", {}).get(_STARTED)
    logger.info(
        "request",
        extra={
            "method": scope.get("method"),
            "route": scope.get("path_template") or "(unmatched)",
            "status": message["status"],
            "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
            "request_id": request_id_of(scope),
        },
    )
