"""The long-lived objects one backend process shares, built once by ``create_app``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.accounts.firebase import FirebaseAuth
from backend.accounts.passwords import Passwords
from backend.accounts.tokens import AccessTokens
from backend.admission.ratelimit import RateLimiter
from backend.push.fcm import LoggingSender, PushSender
from backend.settings import Settings

# A readiness check: returns "ok" or raises.
Probe = Callable[[], Awaitable[str]]


@dataclass(eq=False)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    passwords: Passwords
    access_tokens: AccessTokens
    rate_limiter: RateLimiter
    trusted_proxies: frozenset[str] = field(default_factory=frozenset)
    readiness: dict[str, Probe] = field(default_factory=dict)
    # firebase-admin's App (None without any Firebase setting), Firebase sign-in, and where pushes go.
    firebase_app: Any = None
    firebase_auth: FirebaseAuth | None = None
    push_sender: PushSender = field(default_factory=LoggingSender)
