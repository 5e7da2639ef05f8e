"""Opaque cursors for keyset pagination (``?limit=&cursor=``), stable under inserts."""

from __future__ import annotations

import base64
from typing import Annotated, Any

import msgspec
from litestar.params import QueryParameter

from backend.errors import ValidationFailed

# A query parameter: Litestar validates the bounds (msgspec.Meta applies to bodies, not to queries).
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Page size, 1-100 (default 20)")]
Cursor = Annotated[str | None, QueryParameter(max_length=512, description="next_cursor of the previous page")]
DEFAULT_LIMIT = 20


def encode_cursor(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


def decode_cursor(cursor: str, expected_length: int) -> list[Any]:
    """The position a cursor points after; a tampered or foreign cursor is a 400, not a 500."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = msgspec.json.decode(base64.urlsafe_b64decode(padded))
    except (ValueError, msgspec.DecodeError) as exc:
        raise ValidationFailed("Invalid cursor.", fields={"cursor": "invalid"}) from exc
    if not isinstance(position, list) or len(position) != expected_length:
        raise ValidationFailed("Invalid cursor.", fields={"cursor": "invalid"})
    return position
