"""The long-lived objects one backend process shares, built once by ``create_app``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
import redis.asyncio as aioredis
from litestar.connection import ASGIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.accounts.firebase import FirebaseAuth
from backend.accounts.passwords import Passwords
from backend.accounts.tokens import AccessTokens
from backend.admission.client_ip import client_ip
from backend.admission.controller import AdmissionController
from backend.admission.ratelimit import RateLimiter, enforce_turn_rate
from backend.admission.schemas import AdmissionState
from backend.chat.control import ControlChannel
from backend.chat.event_log import EventLog
from backend.chat.leases import LeaseKeeper
from backend.chat.runner import TurnRunner
from backend.chat.service import TurnService, UserLocks
from backend.inference.client import SGLangClient
from backend.inference.health import HealthMonitor
from backend.inference.pool import WorkerPool
from backend.push.fcm import LoggingSender, PushSender
from backend.settings import Settings

# A readiness check: returns "ok" or raises.
Probe = Callable[[], Awaitable[str]]


@dataclass(eq=False)
class Runtime:
    settings: Settings
    replica_id: UUID
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    passwords: Passwords
    access_tokens: AccessTokens
    rate_limiter: RateLimiter
    redis: aioredis.Redis | None
    http: httpx.AsyncClient
    event_log: EventLog
    control: ControlChannel
    pool: WorkerPool
    sglang: SGLangClient
    runner: TurnRunner
    fleet: HealthMonitor
    leases: LeaseKeeper
    admission: AdmissionController
    user_locks: UserLocks = field(default_factory=UserLocks)
    trusted_proxies: frozenset[str] = field(default_factory=frozenset)
    readiness: dict[str, Probe] = field(default_factory=dict)
    # firebase-admin's App (None without any Firebase setting), Firebase sign-in, and where pushes go.
    firebase_app: Any = None
    firebase_auth: FirebaseAuth | None = None
    push_sender: PushSender = field(default_factory=LoggingSender)

    def admission_state(self) -> AdmissionState:
        """Degrade level and queues for /v1/admin/fleet."""
        return self.admission.state()

    async def limit_turn_rate(self, user_id: UUID, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        """The message routes' per-user and per-IP limits (HTTP and WebSocket alike)."""
        await enforce_turn_rate(
            self.rate_limiter, self.settings.admission, user_id, client_ip(connection, self.trusted_proxies)
        )

    def turn_service(self, session: AsyncSession) -> TurnService:
        return TurnService(
            session,
            chat=self.settings.chat,
            inference=self.settings.inference,
            tiers=self.settings.tiers,
            admission=self.admission,
            runner=self.runner,
            event_log=self.event_log,
            control=self.control,
            user_locks=self.user_locks,
            replica_id=self.replica_id,
        )
