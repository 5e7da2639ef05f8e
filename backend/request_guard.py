"""Input no route may see: U+0000 in any string of a JSON body or a query, and JSON nested too deeply.

Checked once here, for every route, rather than field by field:

- PostgreSQL's ``text`` cannot hold U+0000, so a NUL that reached a statement failed it with a 500; it
  is never meaningful in chat text, a title or a token, so it is refused everywhere (400), on SQLite too,
  so that both databases answer alike.
- msgspec raises ``RecursionError`` on JSON nested deeper than the interpreter's stack allows (a few
  thousand ``[``): a client error, not a bug.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from backend.errors import ValidationFailed

NUL = "\x00"
# How a NUL can appear in valid JSON: a raw NUL byte is not allowed inside a JSON string, so only the
# escape can carry one. Its absence (almost every body) spares walking the decoded value.
_NUL_ESCAPE = b"\\u0000"
CONTAINS_NUL = "contains U+0000"


def contains_nul(value: Any) -> bool:
    """Whether any string in a decoded JSON value (keys included) holds U+0000.

    Iterative: the value may be nested as deep as msgspec allowed, deeper than a recursive walk could go."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class SurgeRequest(Request[Any, Any, Any]):
    """Litestar's request, whose JSON body refuses U+0000 and excessive nesting (400, not 500)."""

    async def json(self) -> Any:
        try:
            value = await super().json()
        except RecursionError as exc:
            raise ValidationFailed(
                "The JSON body is nested too deeply.", fields={"body": "nested too deeply"}
            ) from exc
        if _NUL_ESCAPE in await self.body() and contains_nul(value):
            raise ValidationFailed("Text must not contain U+0000.", fields={"body": CONTAINS_NUL})
        return value


async def refuse_nul_in_query(request: Request[Any, Any, Any]) -> None:
    """``before_request`` of every route: a query parameter holding U+0000 (``%00``) is a 400."""
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            raise ValidationFailed(
                "Text must not contain U+0000.", fields={name.replace(NUL, "") or "query": CONTAINS_NUL}
            )
