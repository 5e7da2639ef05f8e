"""Request and response shapes of ``/v1/auth`` and ``/v1/me`` (API.md, "Accounts")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

Tier = Literal["free", "plus", "admin"]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320, examples=["ada@example.com"])]
# The lower bound is a setting (SURGE_PASSWORD_MIN_CHARS), checked by the service.
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
OpaqueToken = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class User(msgspec.Struct):
    id: UUID
    email: str | None
    display_name: str | None
    tier: Tier
    created_at: datetime


class Session(msgspec.Struct):
    """What sign-up, login and refresh answer: the user and a fresh pair of tokens."""

    user: User
    access_token: str
    refresh_token: str
    expires_in: Annotated[int, msgspec.Meta(description="Seconds until access_token expires")]
    token_type: Literal["bearer"] = "bearer"  # noqa: S105  (the scheme name, not a secret)


class SignupRequest(msgspec.Struct):
    email: Email
    password: Password
    display_name: DisplayName | None = None


class LoginRequest(msgspec.Struct):
    email: Email
    password: Password


class RefreshRequest(msgspec.Struct):
    refresh_token: OpaqueToken


class UserUpdate(msgspec.Struct):
    """Only the fields sent change; ``tier`` and anything else unknown is ignored, never applied."""

    display_name: DisplayName | msgspec.UnsetType | None = msgspec.UNSET


class FirebaseSignIn(msgspec.Struct):
    id_token: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=8192,
            description="A Firebase Auth ID token from the app's Firebase SDK (`getIdToken()`)",
        ),
    ]


class FirebaseSession(Session, kw_only=True):
    """A Session, and whether this sign-in created the account."""

    created: Annotated[
        bool, msgspec.Meta(description="True when this Firebase uid signed in for the first time")
    ]
