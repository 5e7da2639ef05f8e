"""The gateway benchmark's report: a run of some phases still prints what it measured."""

from __future__ import annotations

import argparse
import uuid

import pytest
import redis.asyncio as aioredis

from loadtests.bench_gateway import drop_redis_keys, print_report
from tests.services import REDIS_URL, redis_available, require


def test_a_run_of_some_phases_prints_their_figures_and_dashes_for_the_rest(
    capsys: pytest.CaptureFixture[str],
):
    result = {
        "backend": "postgres",
        "idle": {"cpu_share_of_a_core": 0.004},
        "turns": {
            "cpu_ms_per_turn": 6.55,
            "statements_per_turn": 7.04,
            "database_kb_per_turn": 3.65,
            "redis_commands_per_turn": 27.16,
        },
        "levels": [],
        "max_streams_held": 0,
    }
    print_report([result], argparse.Namespace(phases=["turns"]))
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("postgres"))
    assert row.split() == ["postgres", "0.40", "6.55", "-", "-", "7.04", "-", "3.65", "27.16", "-", "-", "-"]


async def test_a_runs_redis_keys_are_dropped_and_nobody_elses() -> None:
    require("Redis", redis_available())
    prefix, neighbour = f"surge-bench-test-{uuid.uuid4().hex[:8]}", f"surge-bench-test-{uuid.uuid4().hex[:8]}"
    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        # More than one batch of the run's own keys, one of a run beside it, one that only shares the start.
        async with redis.pipeline(transaction=False) as pipe:
            for index in range(1500):
                pipe.set(f"{prefix}:turn:{index}", b"x", ex=600)
            pipe.set(f"{neighbour}:turn:0", b"x", ex=600)
            pipe.set(f"{prefix}x:turn:0", b"x", ex=600)
            await pipe.execute()
        assert await drop_redis_keys(prefix) == 1500
        assert [key async for key in redis.scan_iter(match=f"{prefix}:*")] == []
        assert await redis.exists(f"{neighbour}:turn:0", f"{prefix}x:turn:0") == 2
    finally:
        await redis.delete(f"{neighbour}:turn:0", f"{prefix}x:turn:0")
        await redis.aclose()
