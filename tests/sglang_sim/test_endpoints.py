"""Conformance of the plain endpoints: health, info (both names), load, models, abort, flush, errors."""

from __future__ import annotations

import pytest

from tests.sglang_sim.conftest import chat_body


async def test_health_and_health_generate_answer_200_with_an_empty_body(sim):
    async with sim() as (client, _):
        for path in ("/health", "/health_generate"):
            r = await client.get(path)
            assert (r.status_code, r.content) == (200, b"")


@pytest.mark.parametrize("path", ["/model_info", "/get_model_info"])
async def test_model_info_under_both_names(sim, path):
    async with sim(model_path="deepseek-ai/DeepSeek-R1") as (client, _):
        info = (await client.get(path)).json()
    assert info["model_path"] == "deepseek-ai/DeepSeek-R1"
    assert info["is_generation"] is True
    assert {"tokenizer_path", "preferred_sampling_params", "weight_version"} <= info.keys()


@pytest.mark.parametrize("path", ["/server_info", "/get_server_info"])
async def test_server_info_under_both_names_has_args_and_capacity(sim, path):
    async with sim(max_running_requests=32, max_queued_requests=7, max_total_tokens=150000) as (client, _):
        info = (await client.get(path)).json()
    assert info["max_running_requests"] == 32
    assert info["max_queued_requests"] == 7
    assert info["page_size"] == 1
    assert info["dp_size"] == 1
    assert info["internal_states"][0]["max_total_num_tokens"] == 150000
    assert info["max_total_num_tokens"] == 150000
    assert {
        "model_path",
        "served_model_name",
        "reasoning_parser",
        "enable_cache_report",
        "version",
    } <= info.keys()


async def test_get_load_is_a_list_with_one_entry_per_dp_rank(sim):
    async with sim() as (client, _):
        load = (await client.get("/get_load")).json()
    assert load == [{"dp_rank": 0, "num_reqs": 0, "num_waiting_reqs": 0, "num_tokens": 0}]


async def test_v1_models_lists_the_served_model(sim):
    async with sim(served_model_name="r1", context_length=4096) as (client, _):
        body = (await client.get("/v1/models")).json()
        missing = await client.get("/v1/models/other")
    assert body["object"] == "list"
    assert body["data"][0]["id"] == "r1"
    assert body["data"][0]["object"] == "model"
    assert body["data"][0]["max_model_len"] == 4096
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


async def test_validation_error_is_400_with_sglang_error_shape(sim):
    async with sim() as (client, _):
        r = await client.post("/v1/chat/completions", json={"model": "x"})
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"object", "message", "type", "param", "code"}
    assert body["object"] == "error"
    assert body["code"] == 400


async def test_empty_messages_and_wrong_content_type_are_400(sim):
    async with sim() as (client, _):
        empty = await client.post("/v1/chat/completions", json={"messages": []})
        wrong = await client.post(
            "/v1/chat/completions", content=b"{}", headers={"content-type": "text/plain"}
        )
    assert empty.status_code == 400
    assert empty.json()["message"] == "Messages cannot be empty."
    assert wrong.status_code == 400
    assert "application/json" in wrong.json()["message"]


async def test_context_too_long_is_a_real_400_before_any_chunk(sim):
    async with sim(context_length=64) as (client, _):
        for stream in (False, True):
            r = await client.post("/v1/chat/completions", json=chat_body("word " * 100, stream=stream))
            assert r.status_code == 400
            assert r.headers["content-type"].startswith("application/json")
            assert "longer than the model's context length" in r.json()["message"]


async def test_unknown_path_is_404_and_wrong_method_405(sim):
    async with sim() as (client, _):
        assert (await client.get("/nope")).status_code == 404
        assert (await client.get("/generate")).status_code == 405


async def test_metrics_only_with_enable_metrics(sim):
    async with sim() as (client, _):
        assert (await client.get("/metrics")).status_code == 404


async def test_flush_cache_clears_the_tree_and_refuses_while_requests_run(sim):
    async with sim(sim_speedup=1.0) as (client, app):
        await client.post("/generate", json={"text": "hello there", "sampling_params": {"max_new_tokens": 1}})
        assert app.server.scheduler.cache.total_size > 0
        assert (await client.post("/flush_cache")).status_code == 200
        assert app.server.scheduler.cache.total_size == 0
        import asyncio

        task = asyncio.create_task(
            client.post("/generate", json={"text": "long one", "sampling_params": {"max_new_tokens": 500}})
        )
        while not app.server.scheduler.running:  # noqa: ASYNC110 - polling the scheduler is the point
            await asyncio.sleep(0.01)
        assert (await client.post("/flush_cache")).status_code == 400
        await client.post("/abort_request", json={"abort_all": True})
        await task
