"""``X-Request-ID`` on every response: the client's own when it sent a sane one, else a fresh one."""

from __future__ import annotations

import re
import secrets
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

HEADER = "x-request-id"
_SCOPE_KEY = "surge_request_id"
# A client's id is echoed only if it cannot smuggle anything into logs or headers.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _incoming(scope: Scope | dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _ACCEPTABLE.match(text) else None
    return None


def request_id_of(scope: Scope | dict[str, Any]) -> str:
    """This request's id, chosen on first use and kept in the scope for the rest of the request."""
    state = scope.setdefault("state", {})
    request_id = state.get(_SCOPE_KEY)
    if not isinstance(request_id, str):
        request_id = _incoming(scope) or secrets.token_hex(16)
        state[_SCOPE_KEY] = request_id
    return request_id


async def add_request_id_header(message: Message, scope: Scope) -> None:
    """An app-level ``before_send`` hook: it sees every response, even one raised by middleware."""
    if message["type"] == "http.response.start":
        MutableScopeHeaders.from_message(message)[HEADER] = request_id_of(scope)
