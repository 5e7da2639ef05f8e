"""Sliding-window rate limits: exactly ``limit`` hits in any ``window_s``, per key."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from backend.errors import RateLimited


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


async def enforce(limiter: RateLimiter, rule: RateLimit, key: str) -> None:
    """Count one hit; raise ``429 rate_limited`` with ``Retry-After`` when the rule is exhausted."""
    decision = await limiter.hit(rule, key)
    if not decision.allowed:
        raise RateLimited(retry_after_s=max(1.0, math.ceil(decision.retry_after_s)))
