"""Request and response shapes of ``/v1/auth`` and ``/v1/me`` (API.md, "Accounts")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

Tier = Literal["free", "plus", "admin"]
# An email is something@something.something without spaces or control characters, and may come with
# ASCII spaces around it (``normalise_email`` trims them). Spelt with explicit ASCII classes, not ``\s``:
# the schema's regex dialect (ECMA) and Python's disagree on which Unicode characters are spaces.
EMAIL_PART = r"[^@\x00-\x20\x7f]+"
EMAIL_CORE = rf"{EMAIL_PART}@{EMAIL_PART}\.{EMAIL_PART}"
EMAIL_SPACE = "\t\n\x0b\x0c\r "
EMAIL_PATTERN = rf"^[\t-\r ]*{EMAIL_CORE}[\t-\r ]*$"
Email = Annotated[
    str, msgspec.Meta(min_length=3, max_length=320, pattern=EMAIL_PATTERN, examples=["ada@example.com"])
]
# Logging in takes any password (a wrong one is a 401 like any other).
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
# A new password's lower bound is a setting (SURGE_PASSWORD_MIN_CHARS, default 8), checked by the service;
# the schema states the default.
NewPassword = Annotated[
    str,
    msgspec.Meta(
        min_length=8,
        max_length=256,
        description="8-256 characters (the lower bound is SURGE_PASSWORD_MIN_CHARS)",
    ),
]
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
    password: NewPassword
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


class ExportedUser(User, kw_only=True):
    firebase_uid: str | None


class ExportedLogin(msgspec.Struct):
    """One login (refresh-token family); the tokens themselves are never exported."""

    id: UUID
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ExportedDevice(msgspec.Struct):
    """One device; its push token is write-only and never exported."""

    id: UUID
    platform: str
    app_version: str | None
    locale: str | None
    created_at: datetime
    last_seen_at: datetime | None


class AccountExport(msgspec.Struct):
    """The shape of ``GET /v1/me/export`` (documentation: the route writes the document itself).

    Conversations are `Conversation`s with their whole tree of `Message`s (each with its
    `feedback_comment`); shares are the snapshots as shared."""

    format_version: int
    exported_at: datetime
    user: ExportedUser
    conversations: list[dict[str, Any]]
    shares: list[dict[str, Any]]
    logins: list[ExportedLogin]
    devices: list[ExportedDevice]
