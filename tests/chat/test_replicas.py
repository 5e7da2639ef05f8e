"""Several backend processes on PostgreSQL and Redis: any replica serves any stream, a dead replica's
turns are settled by a survivor, and running more than one process without Redis is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from backend.chat.service import CANCEL_WAIT_S
from loadtests.redis_keys import drop_prefix
from loadtests.sglang_sim import free_port, run_subprocess
from tests.chat.helpers import check_log, concatenated, read_stream, read_until, wait_finished
from tests.conftest import models_json, sign_up, sim_config
from tests.polling import until
from tests.services import REDIS_URL, redis_available, require
from tests.sim_faults import faults

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def replica_env(database_url: str, workers: list[str], prefix: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "SURGE_DATABASE_URL": database_url,
        "SURGE_REDIS_URL": REDIS_URL,
        # The test's own (``redis_prefix``): its replicas share it, as a deployment's do.
        "SURGE_REDIS_KEY_PREFIX": prefix,
        "SURGE_MODELS": models_json(workers),
        "SURGE_DATABASE_AUTO_MIGRATE": "false",
        "SURGE_ARGON2_TIME_COST": "1",
        "SURGE_ARGON2_MEMORY_KIB": "64",
        "SURGE_LOG_LEVEL": "WARNING",
        "SURGE_AUTO_TITLES": "false",
        "SURGE_LEASE_TTL_S": "2",
        "SURGE_SWEEP_INTERVAL_S": "0.5",
        "SURGE_SHUTDOWN_GRACE_S": "1",
    }
    env.update(extra)
    return env


@contextmanager
def replica(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve", "--port", str(port)], env=env, cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            if process.poll() is not None:
                raise RuntimeError(f"replica exited with {process.returncode}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield process, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


async def sim_stats(workers: list[str]) -> list[dict]:
    async with httpx.AsyncClient(timeout=10) as http:
        return [(await http.get(f"{url}/sim/stats")).json() for url in workers]


async def upstream_running(workers: list[str]) -> int:
    """Requests the workers hold (running, or waiting out a stall)."""
    return sum(stats["running"] + stats["waiting"] for stats in await sim_stats(workers))


async def upstream_aborts(workers: list[str], *, more_than: int | None = None) -> int | bool:
    aborted = sum(stats["requests_aborted"] for stats in await sim_stats(workers))
    return aborted if more_than is None else aborted > more_than


@pytest.fixture
def shared_database(database_url: str) -> str:
    require("Redis", redis_available())
    return database_url


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """The test's Redis key prefix. Rate limits and the overload board live in Redis: a test must not
    share them with earlier runs (30 sign-ups per IP per hour) or with tests beside it; and what its
    replicas leave (a killed one's streams stay a day) is dropped after it."""
    prefix = f"test-{uuid.uuid4().hex}"
    yield prefix
    if redis_available():
        await drop_prefix(REDIS_URL, prefix)


# Replicas share PostgreSQL (SQLite is the single-process embedded default).
on_postgresql = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@on_postgresql
async def test_a_turn_started_on_one_replica_streams_and_resumes_on_the_other(
    shared_database, fleet, redis_prefix
):
    env = replica_env(shared_database, fleet, redis_prefix)
    with replica(env) as (_, first_url), replica(env) as (_, second_url):
        async with (
            httpx.AsyncClient(base_url=first_url, timeout=30) as first,
            httpx.AsyncClient(base_url=second_url, timeout=30) as second,
        ):
            alice = await sign_up(first)
            conversation = (await first.post("/v1/conversations", json={}, headers=alice.headers)).json()[
                "id"
            ]
            turn = (
                await first.post(
                    f"/v1/conversations/{conversation}/messages",
                    json={"content": "Across replicas", "thinking": True},
                    headers=alice.headers,
                )
            ).json()
            answer = turn["assistant_message"]["id"]
            # Read part of it from the other replica, hang up, resume on the first.
            start = await read_until(second, f"/v1/messages/{answer}/events", count=4, headers=alice.headers)
            rest = await read_stream(
                first, "GET", f"/v1/messages/{answer}/events?after={start[-1].seq}", headers=alice.headers
            )
            log = start + rest
            check_log(log)
            final = (await second.get(f"/v1/messages/{answer}", headers=alice.headers)).json()
            assert final["status"] == "complete"
            assert concatenated(log, "reasoning") == (final["reasoning"] or "")
            assert concatenated(log, "content") == final["content"]
            # A cancel sent to the replica that does not own the turn reaches the one that does, which
            # stops it upstream; answered by the owner, not forced by the other after CANCEL_WAIT_S.
            # (The workers are slowed down meanwhile, so that the answer is still coming.)
            aborted = await upstream_aborts(fleet)
            with faults(fleet, slowdown=50.0):
                slow_turn = (
                    await second.post(
                        f"/v1/conversations/{conversation}/messages",
                        json={"content": "another", "thinking": True},
                        headers=alice.headers,
                    )
                ).json()["assistant_message"]["id"]
                await until(lambda: upstream_running(fleet), what="the turn on a worker", every_s=0.05)
                asked = time.monotonic()
                cancelled = (
                    await first.post(f"/v1/messages/{slow_turn}/cancel", headers=alice.headers)
                ).json()
                assert time.monotonic() - asked < CANCEL_WAIT_S
                assert cancelled["status"] == "cancelled"
                await until(
                    lambda: upstream_aborts(fleet, more_than=aborted), what="the upstream abort", every_s=0.05
                )


@on_postgresql
async def test_a_killed_replicas_streaming_turn_is_failed_by_a_survivor_with_its_text(
    shared_database, redis_prefix
):
    with run_subprocess(sim_config(sim_speedup=2.0)) as slow:
        env = replica_env(shared_database, [slow.url], redis_prefix)
        with replica(env) as (_, survivor_url):
            with replica(env) as (doomed, doomed_url):
                async with httpx.AsyncClient(base_url=doomed_url, timeout=30) as client:
                    alice = await sign_up(client)
                    conversation = (
                        await client.post("/v1/conversations", json={}, headers=alice.headers)
                    ).json()["id"]
                    answer = (
                        await client.post(
                            f"/v1/conversations/{conversation}/messages",
                            json={"content": "a long one", "thinking": True},
                            headers=alice.headers,
                        )
                    ).json()["assistant_message"]["id"]
                    seen = await read_until(
                        client, f"/v1/messages/{answer}/events", count=5, headers=alice.headers
                    )
                doomed.send_signal(signal.SIGKILL)
                doomed.wait()
            async with httpx.AsyncClient(base_url=survivor_url, timeout=30) as client:
                settled = await wait_finished(client, answer, alice.headers, within_s=15)
                assert settled["status"] == "failed" and settled["error"]["code"] == "interrupted"
                assert settled["reasoning"].startswith(concatenated(seen, "reasoning"))
                log = await read_stream(client, "GET", f"/v1/messages/{answer}/events", headers=alice.headers)
                check_log(log)
                assert log[-1].name == "error"
                assert concatenated(log, "reasoning") == settled["reasoning"]


@on_postgresql
async def test_a_killed_replicas_turn_that_streamed_nothing_is_run_again(
    shared_database, fleet, redis_prefix
):
    # The doomed replica only knows a worker that stalls; the survivor knows healthy ones too.
    with (
        run_subprocess(sim_config(sim_fault_stall_s=4.0)) as stalling,
        replica(replica_env(shared_database, fleet, redis_prefix)) as (_, survivor_url),
    ):
        with replica(replica_env(shared_database, [stalling.url], redis_prefix)) as (doomed, doomed_url):
            async with httpx.AsyncClient(base_url=doomed_url, timeout=30) as client:
                alice = await sign_up(client)
                conversation = (
                    await client.post("/v1/conversations", json={}, headers=alice.headers)
                ).json()["id"]
                answer = (
                    await client.post(
                        f"/v1/conversations/{conversation}/messages",
                        json={"content": "hi"},
                        headers=alice.headers,
                    )
                ).json()["assistant_message"]["id"]
                # Killed once the turn is on its (stalling) worker, and its row says so (the checkpoint
                # stored it as started, attempt 1): nothing streamed, yet it did start.
                await until(
                    lambda: upstream_running([stalling.url]),
                    what="the turn on the stalling worker",
                    every_s=0.05,
                )

                async def checkpointed() -> bool:
                    message = await client.get(f"/v1/messages/{answer}", headers=alice.headers)
                    return message.json()["status"] == "streaming"

                await until(checkpointed, what="the started turn checkpointed", every_s=0.05)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait()
        async with httpx.AsyncClient(base_url=survivor_url, timeout=30) as client:
            finished = await wait_finished(client, answer, alice.headers, within_s=20)
            assert finished["status"] == "complete"
            log = await read_stream(client, "GET", f"/v1/messages/{answer}/events", headers=alice.headers)
            check_log(log)
            assert concatenated(log, "content") == finished["content"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_second_process_without_redis_is_refused(database_url, fleet, redis_prefix):
    env = replica_env(database_url, fleet, redis_prefix)
    del env["SURGE_REDIS_URL"]
    with replica(env):
        port = free_port()
        second = subprocess.run(
            [sys.executable, "-m", "backend.cli", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert second.returncode != 0
    assert "needs Redis" in second.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_several_workers_without_redis_are_refused(database_url, fleet, redis_prefix):
    env = replica_env(database_url, fleet, redis_prefix)
    del env["SURGE_REDIS_URL"]
    result = subprocess.run(
        [sys.executable, "-m", "backend.cli", "serve", "--workers", "2", "--port", str(free_port())],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SURGE_REDIS_URL" in result.stderr
