"""Sliding-window rate limits: exactly ``limit`` hits in any ``window_s``, per key.

Two implementations of one contract: a log per key in memory (the embedded single process) and the
same log as a Redis sorted set, updated by one Lua script so that every replica counts against the
same hits atomically, on Redis's clock rather than each replica's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from backend.errors import RateLimited
from backend.observability import metrics
from backend.settings import AdmissionSettings

logger = logging.getLogger("surge.admission")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A named rule, e.g. ``RateLimit("login_ip", 60, 600)``: 60 hits per 10 minutes per key."""

    name: str
    limit: int
    window_s: float


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    remaining: int
    retry_after_s: float


class RateLimiter(Protocol):
    """Counts hits; in memory for one process, in Redis when replicas must agree."""

    async def hit(self, rule: RateLimit, key: str) -> RateDecision: ...


class _Log(deque[float]):
    """The times of one key's hits, oldest first, and the window they are kept for."""

    def __init__(self, window_s: float) -> None:
        super().__init__()
        self.window_s = window_s


class MemoryRateLimiter:
    """A sliding log per key: exact, and enough for the embedded single process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[tuple[str, str], _Log] = {}
        self._lock = asyncio.Lock()
        self._next_sweep = 0.0

    async def hit(self, rule: RateLimit, key: str) -> RateDecision:
        now = self._clock()
        async with self._lock:
            log = self._hits.setdefault((rule.name, key), _Log(rule.window_s))
            while log and log[0] <= now - rule.window_s:
                log.popleft()
            if len(log) >= rule.limit:
                return RateDecision(False, 0, log[0] + rule.window_s - now)
            log.append(now)
            self._sweep(now)
            return RateDecision(True, rule.limit - len(log), 0.0)

    def _sweep(self, now: float) -> None:
        # Forget keys that have been quiet for their whole window, so one-off IPs do not pile up forever.
        if now < self._next_sweep:
            return
        self._next_sweep = now + 60.0
        stale = [key for key, log in self._hits.items() if not log or log[-1] <= now - log.window_s]
        for key in stale:
            del self._hits[key]


# KEYS[1]: the key's log. ARGV: limit, window in ms, a unique member for this hit.
# Returns {allowed (1/0), remaining, ms until a hit is allowed again}.
_SLIDING_LOG = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, 0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {1, limit - count - 1, 0}
"""


class RedisRateLimiter:
    """The sliding log in Redis: exact across replicas. If Redis fails, the hit is allowed (and
    counted in a metric): refusing every sign-in because a limiter is down would be the worse outage."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str = "surge:rl:") -> None:
        self._prefix = prefix
        self._script = redis.register_script(_SLIDING_LOG)

    async def hit(self, rule: RateLimit, key: str) -> RateDecision:
        try:
            allowed, remaining, wait_ms = await self._script(
                keys=[f"{self._prefix}{rule.name}:{key}"],
                args=[rule.limit, int(rule.window_s * 1000), uuid.uuid4().hex],
            )
        except RedisError as exc:
            metrics.RATE_LIMIT_DECISIONS.labels(rule.name, "limiter_unavailable").inc()
            logger.warning("rate limiter unavailable; allowing", extra={"rule": rule.name, "error": str(exc)})
            return RateDecision(True, rule.limit, 0.0)
        return RateDecision(bool(allowed), int(remaining), int(wait_ms) / 1000)


async def enforce(limiter: RateLimiter, rule: RateLimit, key: str) -> None:
    """Count one hit; raise ``429 rate_limited`` with ``Retry-After`` when the rule is exhausted."""
    decision = await limiter.hit(rule, key)
    if not decision.allowed:
        metrics.RATE_LIMIT_DECISIONS.labels(rule.name, "limited").inc()
        raise RateLimited(retry_after_s=max(1.0, math.ceil(decision.retry_after_s)))


class TurnRateLimit:
    """The message routes' limits (HTTP and WebSocket alike): turns started per user and per client IP,
    per minute."""

    def __init__(self, limiter: RateLimiter, settings: AdmissionSettings) -> None:
        self.limiter = limiter
        self.per_user = RateLimit("turns_user", settings.messages_per_user_per_min, 60)
        self.per_ip = RateLimit("turns_ip", settings.messages_per_ip_per_min, 60)

    async def check(self, user_id: UUID, ip: str) -> None:
        await enforce(self.limiter, self.per_user, str(user_id))
        await enforce(self.limiter, self.per_ip, ip)
