"""The API key routes' bodies (API.md, "API keys and the OpenAI-compatible API")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

NAME_MAX_CHARS = 100


class NewApiKey(msgspec.Struct):
    name: Annotated[
        str, msgspec.Meta(min_length=1, max_length=NAME_MAX_CHARS, description="A label for the key")
    ]


class CreatedApiKey(msgspec.Struct):
    """The one response that ever carries the secret."""

    id: UUID
    name: str
    prefix: str
    secret: Annotated[str, msgspec.Meta(description="`sk-surge-…`: shown only here, store it now")]
    created_at: datetime


class ApiKeyView(msgspec.Struct):
    id: UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyList(msgspec.Struct):
    data: list[ApiKeyView]
