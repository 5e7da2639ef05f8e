"""The fleet as Surge watches it: health thresholds, capacity from /server_info, failover and recovery,
workers joining and leaving at run time, and GET /v1/admin/fleet."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator

import httpx
from prometheus_client import REGISTRY
from sqlalchemy import update

from backend.app import create_app
from backend.db import models as m
from backend.inference.client import SGLangClient
from backend.inference.health import HealthMonitor, cache_turnover
from backend.inference.pool import WorkerPool
from backend.settings import InferenceSettings, ModelSpec
from loadtests.sglang_sim import RunningSim, run_in_process
from tests.chat.helpers import wait_finished
from tests.conftest import MODEL_ID, error_of, make_settings, serve, sign_up, sim_config
from tests.metric_samples import scrape
from tests.polling import until


def inference(workers: list[str], **overrides) -> InferenceSettings:
    return InferenceSettings(
        models=[ModelSpec(id="deepseek-v3.1", display_name="M", workers=workers)],
        health_interval_s=0.1,
        **overrides,
    )


async def test_health_thresholds_mark_a_worker_down_and_up_again():
    async with run_in_process(sim_config()) as sim:
        settings = inference([sim.url], health_failure_threshold=3, health_success_threshold=2)
        pool, client = WorkerPool.from_settings(settings), SGLangClient()
        monitor = HealthMonitor(pool, client, settings)
        worker = pool.workers["deepseek-v3.1"][0]
        try:
            await monitor.check(worker)
            assert worker.healthy and worker.max_total_tokens == 570_000  # read from /server_info
            async with httpx.AsyncClient() as http:
                await http.post(f"{sim.url}/sim/faults", json={"health_fail": True})
                for expected in (True, True, False):  # down only at the third failure in a row
                    await monitor.check(worker)
                    assert worker.healthy is expected
                await http.post(f"{sim.url}/sim/faults", json={"health_fail": False})
                for expected in (False, True):  # up at the second success in a row
                    await monitor.check(worker)
                    assert worker.healthy is expected
        finally:
            await client.close()


def test_cache_turnover_is_uncached_prompt_plus_output_per_second():
    before = (
        0.0,
        {
            "sglang:prompt_tokens_total": 1000,
            "sglang:cached_tokens_total": 400,
            "sglang:generation_tokens_total": 0,
        },
    )
    now = {
        "sglang:prompt_tokens_total": 3000,
        "sglang:cached_tokens_total": 1400,
        "sglang:generation_tokens_total": 500,
    }
    assert cache_turnover(before, 10.0, now) == (2000 - 1000 + 500) / 10


async def test_workers_join_and_leave_when_the_models_file_changes(tmp_path):
    path = tmp_path / "models.json"

    def write(workers: list[str]) -> None:
        path.write_text(json.dumps([{"id": "deepseek-v3.1", "display_name": "M", "workers": workers}]))

    write(["http://127.0.0.1:1"])
    settings = inference(["http://127.0.0.1:1"], models_file=str(path))
    pool = WorkerPool.from_settings(settings)
    monitor = HealthMonitor(pool, SGLangClient(), settings)
    monitor.reload_models_file()
    write(["http://127.0.0.1:1", "http://127.0.0.1:2"])
    import os

    os.utime(path, (1, 1))  # a different mtime, as an edit would give
    monitor.reload_models_file()
    assert [w.url for w in pool.workers["deepseek-v3.1"]] == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    write(["http://127.0.0.1:2"])
    os.utime(path, (2, 2))
    monitor.reload_models_file()
    assert [w.url for w in pool.workers["deepseek-v3.1"]] == ["http://127.0.0.1:2"]
    path.write_text("not json")
    os.utime(path, (3, 3))
    monitor.reload_models_file()  # a broken file changes nothing
    assert [w.url for w in pool.workers["deepseek-v3.1"]] == ["http://127.0.0.1:2"]


def worker_health(client, url: str, healthy: bool):
    """A condition for ``until``: the app's /metrics shows the worker at ``url`` healthy (or not)."""

    async def shown() -> bool:
        value = (await scrape(client)).values.get(
            ("surge_worker_healthy", frozenset({"model": MODEL_ID, "worker": url}.items()))
        )
        return value == (1.0 if healthy else 0.0)

    return shown


async def send(client, account, conversation) -> dict:
    turn = (
        await client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"content": str(uuid.uuid4())},
            headers=account.headers,
        )
    ).json()
    return await wait_finished(client, turn["assistant_message"]["id"], account.headers)


async def test_a_worker_that_turns_unhealthy_stops_getting_turns_and_comes_back(database_url, tmp_path):
    async with run_in_process(sim_config()) as first, run_in_process(sim_config()) as second:
        settings = make_settings(
            database_url,
            tmp_path,
            workers=[first.url, second.url],
            SURGE_ROUTING_POLICY="round_robin",
            SURGE_HEALTH_INTERVAL_S="0.1",
            SURGE_HEALTH_FAILURE_THRESHOLD="2",
            SURGE_HEALTH_SUCCESS_THRESHOLD="2",
        )

        async with serve(create_app(settings)) as client, httpx.AsyncClient() as http:
            alice = await sign_up(client)
            conversation = (await client.post("/v1/conversations", json={}, headers=alice.headers)).json()[
                "id"
            ]
            await http.post(f"{first.url}/sim/faults", json={"health_fail": True})
            await until(
                worker_health(client, first.url, healthy=False), what="first marked down", every_s=0.05
            )
            served = {(await send(client, alice, conversation))["id"] for _ in range(4)}
            assert len(served) == 4
            assert first.app.server.scheduler.snapshot()["requests_finished"] == 0
            ready = (await client.get("/readyz")).json()
            assert ready["checks"]["model:deepseek-v3.1"] == "ok"  # one healthy worker is enough
            await http.post(f"{first.url}/sim/faults", json={"health_fail": False})
            await until(
                worker_health(client, first.url, healthy=True), what="first marked up again", every_s=0.05
            )
            for _ in range(4):
                await send(client, alice, conversation)
            assert first.app.server.scheduler.snapshot()["requests_finished"] >= 1


async def test_a_worker_that_dies_stops_getting_turns(database_url, tmp_path):
    async with run_in_process(sim_config()) as survivor:
        from backend.app import create_app

        settings = make_settings(
            database_url,
            tmp_path,
            workers=["http://127.0.0.1:9", survivor.url],  # nothing listens on port 9
            SURGE_ROUTING_POLICY="round_robin",
            SURGE_HEALTH_INTERVAL_S="0.1",
            SURGE_HEALTH_FAILURE_THRESHOLD="2",
        )
        retries = {"model": "deepseek-v3.1"}
        before = REGISTRY.get_sample_value("surge_upstream_retries_total", retries) or 0.0
        async with serve(create_app(settings)) as client:
            await until(
                worker_health(client, "http://127.0.0.1:9", healthy=False),
                what="port 9 marked down",
                every_s=0.05,
            )
            alice = await sign_up(client)
            conversation = (await client.post("/v1/conversations", json={}, headers=alice.headers)).json()[
                "id"
            ]
            for _ in range(4):
                finished = await send(client, alice, conversation)
                assert finished["status"] == "complete"
            assert await worker_health(client, "http://127.0.0.1:9", healthy=False)()
            # Marked down by its health checks, it never got a turn to fail (no retry was needed).
            assert (REGISTRY.get_sample_value("surge_upstream_retries_total", retries) or 0.0) == before


async def test_the_fleet_view_is_for_admins_only(client, alice, sessions, fleet):
    forbidden = await client.get("/v1/admin/fleet", headers=alice.headers)
    assert forbidden.status_code == 403
    assert error_of(forbidden)["code"] == "forbidden"
    async with sessions() as session:
        await session.execute(update(m.User).where(m.User.id == uuid.UUID(alice.id)).values(tier="admin"))
        await session.commit()
    conversation = (await client.post("/v1/conversations", json={}, headers=alice.headers)).json()["id"]
    await send(client, alice, conversation)
    view = (await client.get("/v1/admin/fleet", headers=alice.headers)).json()
    assert view["policy"] == "ttft"
    assert {worker["url"] for worker in view["workers"]} == set(fleet)
    worker = next(w for w in view["workers"] if w["prompt_tokens"] > 0)
    assert set(worker) >= {
        "url",
        "model",
        "healthy",
        "in_flight",
        "queue_depth",
        "prompt_tokens",
        "cached_tokens",
        "hit_rate",
        "routing_decisions",
    }
    assert sum(worker["routing_decisions"].values()) >= 1


# Room in its KV memory for one long request at a time, while max_running_requests would allow four.
KV_FULL_WORKER = {"sim_speedup": 1.0, "max_running_requests": 4, "max_total_tokens": 2000}
LONG = {"max_new_tokens": 100_000, "ignore_eos": True}


@contextlib.asynccontextmanager
async def three_requests_held(sim: RunningSim) -> AsyncIterator[None]:
    """Three endless requests on ``sim``: one running, two waiting for KV memory."""
    async with httpx.AsyncClient(base_url=sim.url, timeout=30) as http:
        requests = [
            asyncio.create_task(http.post("/generate", json={"text": f"q{i}", "sampling_params": LONG}))
            for i in range(3)
        ]
        try:
            scheduler = sim.app.server.scheduler
            for _ in range(500):
                if len(scheduler.running) == 1 and len(scheduler.waiting) == 2:
                    break
                await asyncio.sleep(0.01)
            assert (len(scheduler.running), len(scheduler.waiting)) == (1, 2)
            yield
        finally:
            await http.post("/abort_request", json={"abort_all": True})
            await asyncio.gather(*requests)


async def test_a_worker_out_of_kv_memory_counts_what_it_runs_as_its_capacity():
    """SGLang's /get_load says how many requests wait: a worker queueing with fewer than
    max_running_requests running has run out of KV memory, and admission counts only what it runs."""
    async with run_in_process(sim_config(**KV_FULL_WORKER)) as sim, three_requests_held(sim):
        settings = inference([sim.url])
        pool, sglang = WorkerPool.from_settings(settings), SGLangClient()
        try:
            await HealthMonitor(pool, sglang, settings).check(pool.workers["deepseek-v3.1"][0])
        finally:
            await sglang.close()
        worker = pool.workers["deepseek-v3.1"][0]
        assert worker.max_running == 4  # from /server_info
        assert (worker.reported_load, worker.reported_waiting) == (3, 2)
        assert pool.capacity("deepseek-v3.1") == 1


async def test_the_fleet_view_shows_each_workers_own_queue(database_url, tmp_path, sessions):
    async with run_in_process(sim_config(**KV_FULL_WORKER)) as sim:
        settings = make_settings(database_url, tmp_path, workers=[sim.url], SURGE_HEALTH_INTERVAL_S="0.1")
        async with serve(create_app(settings)) as client, three_requests_held(sim):
            admin = await sign_up(client)
            async with sessions() as session:
                await session.execute(
                    update(m.User).where(m.User.id == uuid.UUID(admin.id)).values(tier="admin")
                )
                await session.commit()
            depths: list[int] = []
            for _ in range(100):
                view = (await client.get("/v1/admin/fleet", headers=admin.headers)).json()
                depths.append(view["workers"][0]["queue_depth"])
                if depths[-1] == 2:
                    break
                await asyncio.sleep(0.05)
            assert depths[-1] == 2, depths
