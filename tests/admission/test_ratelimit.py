"""Rate limits: exact in memory, exact in Redis, and exact across two processes sharing Redis."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import uuid

import pytest
import redis.asyncio as aioredis

from backend.admission.ratelimit import MemoryRateLimiter, RateLimit, RedisRateLimiter, enforce
from backend.errors import RateLimited
from tests.services import REDIS_URL, redis_available, require


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_limiter_allows_exactly_the_limit_in_any_window():
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    rule = RateLimit("login_email", 3, 600)
    decisions = []
    for offset in (0, 100, 200, 300):
        clock.now = 1000 + offset
        decisions.append(await limiter.hit(rule, "a@example.com"))
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after_s == 300  # the first hit leaves the window at 1600
    assert (await limiter.hit(rule, "b@example.com")).allowed, "keys are independent"
    clock.now = 1600
    assert (await limiter.hit(rule, "a@example.com")).allowed


async def test_enforce_raises_rate_limited_with_a_whole_number_of_seconds():
    limiter = MemoryRateLimiter(Clock())
    rule = RateLimit("signup_ip", 1, 3600)
    await enforce(limiter, rule, "10.0.0.1")
    with pytest.raises(RateLimited) as limited:
        await enforce(limiter, rule, "10.0.0.1")
    assert limited.value.retry_after_s == 3600 and limited.value.code == "rate_limited"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limiter(request: pytest.FixtureRequest):
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    require("Redis", redis_available())
    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        yield RedisRateLimiter(redis, prefix=f"test:{uuid.uuid4().hex}:")
    finally:
        await redis.aclose()


async def test_several_rules_count_in_one_call_until_one_refuses(limiter):
    """A login is limited per IP, per email and IP, and per email: each rule counts it, in order; once one
    refuses, the rules after it do not count the refused request."""
    per_ip, per_pair, per_email = (
        RateLimit("ip", 10, 60),
        RateLimit("pair", 2, 60),
        RateLimit("email", 10, 60),
    )
    checks = [(per_ip, "ip"), (per_pair, "pair"), (per_email, "email")]
    assert [[d.remaining for d in await limiter.hits(checks)] for _ in range(2)] == [[9, 1, 9], [8, 0, 8]]
    refused = await limiter.hits(checks)
    assert [d.allowed for d in refused] == [True, False]
    assert 0 < refused[-1].retry_after_s <= 60
    # The email's rule did not count the refused login: 8 left before it, 7 after one more hit.
    assert (await limiter.hit(per_email, "email")).remaining == 7
    with pytest.raises(RateLimited):
        await enforce(limiter, per_ip, "ip", (per_pair, "pair"), (per_email, "email"))


async def test_redis_limiter_is_exact_under_concurrent_hits():
    require("Redis", redis_available())
    redis = aioredis.Redis.from_url(REDIS_URL)
    limiter = RedisRateLimiter(redis, prefix=f"test:{uuid.uuid4().hex}:")
    rule = RateLimit("turns_user", 25, 60)
    try:
        decisions = await asyncio.gather(*(limiter.hit(rule, "u") for _ in range(60)))
        assert sum(d.allowed for d in decisions) == 25
        refused = [d for d in decisions if not d.allowed]
        assert all(0 < d.retry_after_s <= 60 for d in refused)
        assert sorted(d.remaining for d in decisions if d.allowed) == list(range(25))
    finally:
        await redis.aclose()


async def test_redis_down_lets_requests_through_rather_than_locking_everyone_out():
    redis = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2)
    try:
        decision = await RedisRateLimiter(redis).hit(RateLimit("login_ip", 1, 60), "ip")
        assert decision.allowed
    finally:
        await redis.aclose()


HITTER = textwrap.dedent(
    """
    import asyncio, json, sys
    import redis.asyncio as aioredis
    from backend.admission.ratelimit import RateLimit, RedisRateLimiter

    async def main():
        redis = aioredis.Redis.from_url(sys.argv[1])
        limiter = RedisRateLimiter(redis, prefix=sys.argv[2])
        rule = RateLimit("login_ip", 40, 600)
        decisions = await asyncio.gather(*(limiter.hit(rule, "203.0.113.9") for _ in range(50)))
        print(json.dumps(sum(d.allowed for d in decisions)))
        await redis.aclose()

    asyncio.run(main())
    """
)


def test_two_processes_sharing_redis_allow_exactly_the_limit_between_them():
    require("Redis", redis_available())
    prefix = f"test:{uuid.uuid4().hex}:"
    processes = [
        subprocess.Popen([sys.executable, "-c", HITTER, REDIS_URL, prefix], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    allowed = [json.loads(process.communicate(timeout=60)[0]) for process in processes]
    assert all(process.returncode == 0 for process in processes)
    # 100 attempts from two replicas against one limit of 40: exactly 40 get through, however split.
    assert sum(allowed) == 40, allowed
