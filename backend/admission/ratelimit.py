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
from collections.abc import Callable, Sequence
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

    async def hits(self, checks: Sequence[tuple[RateLimit, str]]) -> list[RateDecision]:
        """Count a hit on each (rule, key) in order, stopping at the first refused: the decisions up to
        that one (a request limited several ways pays one round trip, and a refused request is not
        counted by the rules after the one that refused it)."""
        ...


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

    async def hits(self, checks: Sequence[tuple[RateLimit, str]]) -> list[RateDecision]:
        decisions = []
        for rule, key in checks:
            decisions.append(decision := await self.hit(rule, key))
            if not decision.allowed:
                break
        return decisions

    def _sweep(self, now: float) -> None:
        # Forget keys that have been quiet for their whole window, so one-off IPs do not pile up forever.
        if now < self._next_sweep:
            return
        self._next_sweep = now + 60.0
        stale = [key for key, log in self._hits.items() if not log or log[-1] <= now - log.window_s]
        for key in stale:
            del self._hits[key]


# One key's log per KEYS[i], with ARGV[3i-2 .. 3i]: its limit, its window in ms, a unique member for this
# hit. Each is counted in turn until one refuses. Returns per key counted {allowed (1/0), remaining, ms
# until a hit is allowed again}.
_SLIDING_LOG = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local out = {}
for i = 1, #KEYS do
  local limit, window = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[i])
  if count >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    out[#out + 1] = {0, 0, tonumber(oldest[2]) + window - now}
    return out
  end
  redis.call('ZADD', KEYS[i], now, ARGV[3 * i])
  redis.call('PEXPIRE', KEYS[i], window)
  out[#out + 1] = {1, limit - count - 1, 0}
end
return out
"""


class RedisRateLimiter:
    """The sliding log in Redis: exact across replicas. If Redis fails, the hit is allowed (and
    counted in a metric): refusing every sign-in because a limiter is down would be the worse outage."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str = "surge:rl:") -> None:
        self._prefix = prefix
        self._script = redis.register_script(_SLIDING_LOG)

    async def hit(self, rule: RateLimit, key: str) -> RateDecision:
        return (await self.hits([(rule, key)]))[0]

    async def hits(self, checks: Sequence[tuple[RateLimit, str]]) -> list[RateDecision]:
        args: list[int | str] = []
        for rule, _ in checks:
            args += (rule.limit, int(rule.window_s * 1000), uuid.uuid4().hex)
        try:
            results = await self._script(
                keys=[f"{self._prefix}{rule.name}:{key}" for rule, key in checks], args=args
            )
        except RedisError as exc:
            for rule, _ in checks:
                metrics.RATE_LIMIT_DECISIONS.labels(rule.name, "limiter_unavailable").inc()
            names = ",".join(rule.name for rule, _ in checks)
            logger.warning("rate limiter unavailable; allowing", extra={"rule": names, "error": str(exc)})
            return [RateDecision(True, rule.limit, 0.0) for rule, _ in checks]
        return [
            RateDecision(bool(allowed), int(remaining), int(wait_ms) / 1000)
            for allowed, remaining, wait_ms in results
        ]


async def enforce(limiter: RateLimiter, rule: RateLimit, key: str, *more: tuple[RateLimit, str]) -> None:
    """Count one hit on each rule (in one round trip); raise ``429 rate_limited`` with ``Retry-After``
    when one is exhausted (the rules after it are not counted)."""
    checks = [(rule, key), *more]
    for (checked, _), decision in zip(checks, await limiter.hits(checks), strict=False):
        if not decision.allowed:
            metrics.RATE_LIMIT_DECISIONS.labels(checked.name, "limited").inc()
            raise RateLimited(retry_after_s=max(1.0, math.ceil(decision.retry_after_s)))


class TurnRateLimit:
    """The message routes' limits (HTTP and WebSocket alike): turns started per user and per client IP,
    per minute."""

    def __init__(self, limiter: RateLimiter, settings: AdmissionSettings) -> None:
        self.limiter = limiter
        self.per_user = RateLimit("turns_user", settings.messages_per_user_per_min, 60)
        self.per_ip = RateLimit("turns_ip", settings.messages_per_ip_per_min, 60)

    async def check(self, user_id: UUID, ip: str) -> None:
        await enforce(self.limiter, self.per_user, str(user_id), (self.per_ip, ip))
