"""Queueing, 503 on a full queue, abort, retraction and eviction under capacity pressure."""

from __future__ import annotations

import asyncio

import pytest

from loadtests.sglang_sim.tokenizer import encode
from tests.sglang_sim.conftest import chat_body, sse_events

LONG = {"max_new_tokens": 100000, "ignore_eos": True}


async def _wait(predicate, limit_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_requests_beyond_max_running_wait_in_the_queue(sim):
    async with sim(sim_speedup=1.0, max_running_requests=1) as (client, app):
        tasks = [
            asyncio.create_task(client.post("/generate", json={"text": f"q{i}", "sampling_params": LONG}))
            for i in range(3)
        ]
        sched = app.server.scheduler
        await _wait(lambda: len(sched.running) == 1 and len(sched.waiting) == 2)
        load = (await client.get("/get_load")).json()[0]
        assert load["num_reqs"] == 3
        assert load["num_waiting_reqs"] == 2
        assert load["num_tokens"] > 0
        await client.post("/abort_request", json={"abort_all": True})
        for t in tasks:
            assert (await t).json()["meta_info"]["finish_reason"]["type"] == "abort"


async def test_full_queue_rejects_with_503_in_both_forms(sim):
    async with sim(sim_speedup=1.0, max_running_requests=1, max_queued_requests=1) as (client, app):
        sched = app.server.scheduler
        running = asyncio.create_task(client.post("/generate", json={"text": "a", "sampling_params": LONG}))
        await _wait(lambda: len(sched.running) == 1)
        queued = asyncio.create_task(client.post("/generate", json={"text": "b", "sampling_params": LONG}))
        await _wait(lambda: len(sched.waiting) == 1)

        plain = await client.post("/v1/chat/completions", json=chat_body("c"))
        assert plain.status_code == 503
        message = "The request queue is full."
        assert plain.json() == {
            "object": "error",
            "message": message,
            "type": "503",
            "param": None,
            "code": 503,
        }
        streamed = await client.post("/v1/chat/completions", json=chat_body("d", stream=True))
        assert streamed.status_code == 200
        events = sse_events(streamed.text)
        assert events[0]["error"]["code"] == 503
        assert events[0]["error"]["message"] == "The request queue is full."
        assert events[-1] == "[DONE]"
        native = await client.post("/generate", json={"text": "e", "stream": True})
        reason = sse_events(native.text)[0]["meta_info"]["finish_reason"]
        assert reason == {"type": "abort", "status_code": 503, "message": "The request queue is full."}

        await client.post("/abort_request", json={"abort_all": True})
        await running
        await queued


async def test_abort_request_by_rid_ends_a_stream_with_abort(sim):
    async with sim(sim_speedup=1.0) as (client, app):
        body = chat_body("abort me", stream=True, rid="victim", max_tokens=100000, ignore_eos=True)
        task = asyncio.create_task(client.post("/v1/chat/completions", json=body))
        await _wait(lambda: app.server.scheduler.running)
        assert (await client.post("/abort_request", json={"rid": "victim"})).status_code == 200
        events = sse_events((await task).text)
    assert events[-2]["choices"][0]["finish_reason"] == "abort"
    assert events[-1] == "[DONE]"
    assert app.server.scheduler.used_tokens == 0


async def test_eviction_under_capacity_pressure_drops_the_oldest_prefix(sim):
    async with sim(max_total_tokens=400, enable_cache_report=True) as (client, app):
        prompts = [" ".join(f"w{k}x{i}" for i in range(150)) for k in range(4)]
        for p in prompts:
            await client.post("/generate", json={"text": p, "sampling_params": {"max_new_tokens": 2}})
        sched = app.server.scheduler
        assert sched.stats.num_evicted_tokens > 0
        assert sched.cache.total_size <= 400
        first = await client.post(
            "/generate", json={"text": prompts[0], "sampling_params": {"max_new_tokens": 1}}
        )
        last = await client.post(
            "/generate", json={"text": prompts[3], "sampling_params": {"max_new_tokens": 1}}
        )
    assert first.json()["meta_info"]["cached_tokens"] == 0  # evicted (least recently used)
    assert last.json()["meta_info"]["cached_tokens"] == len(encode(prompts[3])) - 1


async def test_kv_exhaustion_retracts_instead_of_failing(sim):
    async with sim(max_total_tokens=300, max_running_requests=8) as (client, app):
        params = {"max_new_tokens": 120, "ignore_eos": True}
        bodies = [{"text": f"prompt number {i}", "sampling_params": params} for i in range(6)]
        results = await asyncio.gather(*(client.post("/generate", json=b) for b in bodies))
    metas = [r.json()["meta_info"] for r in results]
    assert all(m["finish_reason"] == {"type": "length", "length": 120} for m in metas)
    assert app.server.scheduler.stats.num_retractions > 0
    assert sum(m["total_retractions"] for m in metas) == app.server.scheduler.stats.num_retractions


async def test_priority_scheduling_serves_urgent_requests_first_and_preempts_for_them(sim):
    config = {"sim_speedup": 1.0, "max_running_requests": 1, "enable_priority_scheduling": True}
    async with sim(**config) as (client, app):
        sched = app.server.scheduler

        def generate(text: str, priority: int | None = None) -> asyncio.Task:
            body = {"text": text, "sampling_params": LONG, **({"priority": priority} if priority else {})}
            return asyncio.create_task(client.post("/generate", json=body))

        running = generate("free one")
        await _wait(lambda: len(sched.running) == 1)
        later = generate("free two")
        await _wait(lambda: len(sched.waiting) == 1)
        # Urgent by 5 (under the threshold of 10): first in line, but no preemption.
        soon = generate("plus", priority=5)
        await _wait(lambda: len(sched.waiting) == 2)
        sched._order_waiting()
        assert [r.priority for r in sched.waiting] == [5, 0]
        assert sched.running[0].priority == 0
        # Urgent by 100: the running request goes back to the queue and this one runs.
        urgent = generate("admin", priority=100)
        await _wait(lambda: sched.running and sched.running[0].priority == 100)
        assert sched.stats.num_retractions == 1
        assert sorted(r.priority for r in sched.waiting) == [0, 0, 5]
        await client.post("/abort_request", json={"abort_all": True})
        for task in (running, later, soon, urgent):
            assert (await task).json()["meta_info"]["finish_reason"]["type"] == "abort"


async def test_without_priority_scheduling_priority_is_ignored(sim):
    async with sim(sim_speedup=1.0, max_running_requests=1) as (client, app):
        sched = app.server.scheduler
        first = asyncio.create_task(client.post("/generate", json={"text": "a", "sampling_params": LONG}))
        await _wait(lambda: len(sched.running) == 1)
        second = asyncio.create_task(
            client.post("/generate", json={"text": "b", "sampling_params": LONG, "priority": 100})
        )
        await _wait(lambda: len(sched.waiting) == 1)
        # A few scheduling steps with the urgent request waiting: each would have preempted for it.
        steps = sched.step_count
        await _wait(lambda: sched.step_count >= steps + 3)
        assert len(sched.running) == 1 and sched.running[0].priority == 0  # FCFS: no preemption
        assert sched.stats.num_retractions == 0
        await client.post("/abort_request", json={"abort_all": True})
        for task in (first, second):
            assert (await task).json()["meta_info"]["finish_reason"]["type"] == "abort"


@pytest.mark.parametrize("priority_scheduling", [False, True])
async def test_lpm_serves_the_longest_cached_prefix_first_and_priority_before_it(sim, priority_scheduling):
    config = {"sim_speedup": 1.0, "max_running_requests": 1, "schedule_policy": "lpm"}
    async with sim(**config, enable_priority_scheduling=priority_scheduling) as (client, app):
        sched = app.server.scheduler
        cached = "a long shared document " * 40
        await client.post("/generate", json={"text": cached, "sampling_params": {"max_new_tokens": 1}})
        busy = {"text": "busy", "sampling_params": LONG}
        tasks = [asyncio.create_task(client.post("/generate", json=busy))]
        await _wait(lambda: len(sched.running) == 1)
        for waiting, body in enumerate(
            (
                {"text": "unrelated words", "sampling_params": LONG},
                {"text": cached + "and a question", "sampling_params": LONG},
                {"text": "urgent but uncached", "sampling_params": LONG, "priority": 5},
            ),
            start=1,
        ):
            tasks.append(asyncio.create_task(client.post("/generate", json=body)))
            await _wait(lambda n=waiting: len(sched.waiting) == n)
        sched._order_waiting()
        long_prompt = [len(r.prompt_ids) > 100 for r in sched.waiting]
        if priority_scheduling:
            assert sched.waiting[0].priority == 5 and long_prompt[1:] == [True, False]
        else:
            assert long_prompt[0] is True, "the cached prefix goes first; priority is ignored"
        await client.post("/abort_request", json={"abort_all": True})
        await asyncio.gather(*tasks)
