"""Opaque cursors for keyset pagination (``?limit=&cursor=``), stable under inserts."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import msgspec
from litestar.params import QueryParameter

from backend.errors import ValidationFailed

# A query parameter: Litestar validates the bounds (msgspec.Meta applies to bodies, not to queries).
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Page size, 1-100 (default 20)")]
Cursor = Annotated[str | None, QueryParameter(max_length=512, description="next_cursor of the previous page")]
DEFAULT_LIMIT = 20


def encode_cursor(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


P = TypeVar("P")
# A cursor's timestamp must say its offset: a naive one cannot be compared with stored (UTC) times.
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


def invalid_cursor() -> ValidationFailed:
    return ValidationFailed("Invalid cursor.", fields={"cursor": "invalid"})


def decode_cursor(cursor: str, position_type: type[P]) -> P:
    """The position a cursor points after, typed (e.g. ``tuple[bool, AwareDatetime, UUID]``).

    A cursor is opaque but comes back from the client: a tampered or foreign one (bad base64, other JSON,
    wrong types, a naive timestamp, nesting deep enough to exhaust the stack) is a 400, never a 500."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return msgspec.json.decode(base64.urlsafe_b64decode(padded), type=position_type)
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise invalid_cursor() from exc


def in_utc(moment: datetime) -> datetime:
    """A cursor's timestamp in UTC; one whose UTC value falls outside the calendar (year 0) is invalid."""
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise invalid_cursor() from exc
