"""Where a client keeps its tokens: the ``TokenStore`` protocol, two stores, and the holder with its locks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

import msgspec

from surge._types import Session

__all__ = ["Credentials", "FileTokenStore", "MemoryTokenStore", "TokenStore"]

# Refresh this long before the access token expires, so a request never leaves with a token that dies
# on the way.
REFRESH_MARGIN_S = 30.0


class Credentials(msgspec.Struct, kw_only=True, frozen=True):
    """A signed-in session as a token store keeps it."""

    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None
    """Unix time the access token expires at; ``None`` when unknown (then it is refreshed on 401 only)."""
    user_id: str | None = None
    lifetime: float | None = None
    """Seconds the access token was issued for (``expires_in``)."""

    @classmethod
    def from_session(cls, session: Session, *, now: float | None = None) -> Credentials:
        now = time.time() if now is None else now
        return cls(
            access_token=session.access_token,
            refresh_token=session.refresh_token,
            expires_at=now + session.expires_in,
            user_id=session.user.id,
            lifetime=float(session.expires_in),
        )

    def __repr__(self) -> str:
        return f"Credentials(access_token='***', refresh_token='***', expires_at={self.expires_at!r})"

    def expires_within(self, seconds: float, *, now: float | None = None) -> bool:
        if self.expires_at is None:
            return False
        return self.expires_at - (time.time() if now is None else now) <= seconds

    def due_for_refresh(self, *, now: float | None = None) -> bool:
        """Whether the access token is in the last stretch of its life: its last 30 s, or the last quarter
        of a token issued for under two minutes (so a short-lived token is not refreshed on every call)."""
        margin = REFRESH_MARGIN_S if self.lifetime is None else min(REFRESH_MARGIN_S, self.lifetime / 4)
        return self.expires_within(margin, now=now)


@runtime_checkable
class TokenStore(Protocol):
    """Persists a session so an app stays signed in across restarts.

    The client calls ``load()`` once when it starts, ``save()`` after every sign-in and refresh (each
    refresh rotates the refresh token: the old one is spent), and ``clear()`` on log-out, account deletion,
    or when the server revokes the session. Calls are short and synchronous, also from ``AsyncSurge``.
    """

    def load(self) -> Credentials | None: ...

    def save(self, credentials: Credentials) -> None: ...

    def clear(self) -> None: ...


class MemoryTokenStore:
    """The default: the session lives as long as the process."""

    def __init__(self, credentials: Credentials | None = None) -> None:
        self._credentials = credentials

    def load(self) -> Credentials | None:
        return self._credentials

    def save(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def clear(self) -> None:
        self._credentials = None


class FileTokenStore:
    """A JSON file readable by its owner only, replaced atomically so a crash never leaves half a session.

    An example of a persistent store; a mobile or desktop app would rather use the platform's keychain.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    def load(self) -> Credentials | None:
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=Credentials)
        except FileNotFoundError:
            return None
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # unreadable: as if signed out

    def save(self, credentials: Credentials) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".surge-session-", dir=self.path.parent)
        try:
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(msgspec.json.encode(credentials))
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class SessionTokens:
    """The tokens one client (and its ``with_options`` copies) shares, with the locks that make a refresh
    single-flight: callers that find the same stale token wait for one refresh instead of racing."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self._credentials = store.load()
        self.thread_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None

    @property
    def async_lock(self) -> asyncio.Lock:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        return self._async_lock

    @property
    def credentials(self) -> Credentials | None:
        return self._credentials

    @property
    def access_token(self) -> str | None:
        return self._credentials.access_token if self._credentials else None

    def can_refresh(self) -> bool:
        return self._credentials is not None and self._credentials.refresh_token is not None

    def needs_refresh(self) -> bool:
        credentials = self._credentials
        return (
            credentials is not None
            and credentials.refresh_token is not None
            and credentials.due_for_refresh()
        )

    def set(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self.store.save(credentials)

    def set_session(self, session: Session) -> None:
        self.set(Credentials.from_session(session))

    def clear(self) -> None:
        self._credentials = None
        self.store.clear()
