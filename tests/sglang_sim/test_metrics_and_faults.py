"""Prometheus metrics (names, labels, values) and fault injection by flag and over /sim/faults."""

from __future__ import annotations

import asyncio
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.metric_samples import sample
from tests.polling import until
from tests.sglang_sim.conftest import chat_body, sse_events


def _value(text: str, name: str) -> float:
    match = re.search(rf'^{re.escape(name)}\{{model_name="([^"]+)"\}} (\S+)$', text, re.M)
    assert match, f"{name} missing"
    return float(match.group(2))


async def test_metrics_names_labels_and_values(sim):
    async with sim(enable_metrics=True, served_model_name="r1") as (client, app):
        body = chat_body("metrics please", max_tokens=10)
        await client.post("/v1/chat/completions", json=body)
        await client.post("/v1/chat/completions", json=body)
        text = (await client.get("/metrics")).text
    scheduler, stats = app.server.scheduler, app.server.scheduler.stats
    families = {family.name: family for family in text_string_to_metric_families(text)}
    r1 = {"model_name": "r1"}
    # Each gauge has its sample, labelled, with the scheduler's value at the scrape.
    gauges = {
        "num_running_reqs": 0,
        "num_queue_reqs": 0,
        "num_used_tokens": scheduler.used_tokens,
        "token_usage": scheduler.used_tokens / scheduler.config.max_total_tokens,
        "gen_throughput": stats.gen_throughput,
        "cache_hit_rate": stats.last_batch_hit_rate,
    }
    for gauge, value in gauges.items():
        assert families[f"sglang:{gauge}"].type == "gauge"
        assert sample(text, f"sglang:{gauge}", **r1) == pytest.approx(value), gauge
    assert _value(text, "sglang:num_requests_total") == 2
    assert _value(text, "sglang:generation_tokens_total") == 20
    prompt = _value(text, "sglang:prompt_tokens_total")
    cached = _value(text, "sglang:cached_tokens_total")
    assert cached == prompt / 2 - 1  # the second identical prompt hit on all but its last token
    assert _value(text, "sglang:cache_hit_rate") == (prompt / 2 - 1) / (prompt / 2)
    # 9 decode steps per request between its 10 tokens; one first token, queueing and end each.
    counts = {"time_to_first_token_seconds": 2, "inter_token_latency_seconds": 18,
              "e2e_request_latency_seconds": 2, "queue_time_seconds": 2}  # fmt: skip
    for hist, count in counts.items():
        assert families[f"sglang:{hist}"].type == "histogram"
        assert sample(text, f"sglang:{hist}_count", **r1) == count, hist
        assert sample(text, f"sglang:{hist}_bucket", **r1, le="+Inf") == count, hist


async def test_the_gauges_show_the_requests_running_and_waiting_at_the_scrape(sim):
    config = {
        "enable_metrics": True,
        "served_model_name": "r1",
        "sim_speedup": 1.0,
        "max_running_requests": 1,
    }
    async with sim(**config) as (client, app):
        scheduler = app.server.scheduler
        long = {"max_new_tokens": 100000, "ignore_eos": True}
        tasks = [
            asyncio.create_task(client.post("/generate", json={"text": f"q{i}", "sampling_params": long}))
            for i in range(2)
        ]
        await until(
            lambda: (len(scheduler.running), len(scheduler.waiting)) == (1, 1) and scheduler.used_tokens
        )
        text = (await client.get("/metrics")).text
        await client.post("/abort_request", json={"abort_all": True})
        await asyncio.gather(*tasks)
    r1 = {"model_name": "r1"}
    assert sample(text, "sglang:num_running_reqs", **r1) == 1
    assert sample(text, "sglang:num_queue_reqs", **r1) == 1
    used = sample(text, "sglang:num_used_tokens", **r1)
    assert used is not None and used > 0
    assert sample(text, "sglang:token_usage", **r1) == pytest.approx(used / scheduler.config.max_total_tokens)


async def test_fault_refuse_answers_503(sim):
    async with sim(sim_fault_refuse_rate=1.0) as (client, _):
        r = await client.post("/v1/chat/completions", json=chat_body("x"))
    assert r.status_code == 503
    assert r.json()["code"] == 503


async def test_fault_health_fail_over_the_admin_route(sim):
    async with sim() as (client, _):
        assert (await client.post("/sim/faults", json={"health_fail": True})).json()["health_fail"] is True
        assert (await client.get("/health")).status_code == 503
        assert (await client.get("/health_generate")).status_code == 503
        await client.delete("/sim/faults")
        assert (await client.get("/health")).status_code == 200
        assert (await client.post("/sim/faults", json={"nonsense": 1})).status_code == 400
        assert (await client.post("/sim/faults", json={"refuse_rate": 2})).status_code == 400
        assert (await client.get("/sim/faults")).json()["refuse_rate"] == 0.0


async def test_fault_slowdown_stretches_virtual_time(sim):
    async with sim() as (client, _):
        fast = (
            await client.post("/generate", json={"text": "a", "sampling_params": {"max_new_tokens": 10}})
        ).json()
        await client.post("/sim/faults", json={"slowdown": 3.0})
        slow = (
            await client.post("/generate", json={"text": "b", "sampling_params": {"max_new_tokens": 10}})
        ).json()
    assert slow["meta_info"]["e2e_latency"] > 2.5 * fast["meta_info"]["e2e_latency"]


async def test_fault_stall_delays_the_first_token(sim):
    import time

    async with sim(sim_fault_stall_s=0.3) as (client, _):
        t0 = time.monotonic()
        await client.post("/generate", json={"text": "a", "sampling_params": {"max_new_tokens": 1}})
    assert time.monotonic() - t0 >= 0.3


async def test_server_info_reports_the_simulator(sim):
    async with sim(sim_speedup=20.0) as (client, _):
        info = (await client.get("/server_info")).json()
    assert info["simulated"] is True
    assert info["sim"]["sim_speedup"] == 20.0
    assert "sim_speedup" not in info  # server args stay SGLang's
    assert sse_events("") == []


async def test_fault_answer_text_replaces_the_answer_and_keeps_the_reasoning(sim):
    hostile = "# Title\n\n<img src=x onerror=alert(1)> and `code`"
    body = chat_body("same question", stream=True, separate_reasoning=True)
    async with sim(reasoning_parser="deepseek-r1") as (client, _):
        generated = sse_events((await client.post("/v1/chat/completions", json=body)).text)
        knob = await client.post("/sim/faults", json={"answer_text": hostile})
        assert knob.json()["answer_text"] == hostile
        fixed = sse_events((await client.post("/v1/chat/completions", json=body)).text)
        assert (await client.post("/sim/faults", json={"answer_text": 3})).status_code == 400

    def text(events, key):
        return "".join(c["choices"][0]["delta"].get(key) or "" for c in events[:-1] if c["choices"])

    assert text(fixed, "content") == hostile
    assert text(generated, "content") != hostile
    assert text(fixed, "reasoning_content") == text(generated, "reasoning_content") != ""
