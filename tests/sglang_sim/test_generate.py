"""Conformance of /generate: cumulative streamed text, meta_info, finish reasons, input_ids."""

from __future__ import annotations

import itertools

from tests.sglang_sim.conftest import sse_events


async def test_non_streamed_generate_shape(sim):
    async with sim() as (client, _):
        r = await client.post(
            "/generate", json={"text": "Once upon", "sampling_params": {"max_new_tokens": 6}}
        )
    body = r.json()
    assert r.status_code == 200
    assert len(body["output_ids"]) == 6
    assert body["text"]
    meta = body["meta_info"]
    assert meta["finish_reason"] == {"type": "length", "length": 6}
    assert meta["completion_tokens"] == 6
    assert meta["prompt_tokens"] == 2
    assert {"id", "cached_tokens", "e2e_latency"} <= meta.keys()


async def test_streamed_text_is_cumulative_and_finish_reason_null_until_the_end(sim):
    async with sim(sim_speedup=200.0) as (client, _):
        r = await client.post(
            "/generate", json={"text": "Stream me", "sampling_params": {"max_new_tokens": 40}, "stream": True}
        )
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    outs = events[:-1]
    assert len(outs) > 1
    for prev, cur in itertools.pairwise(outs):
        assert cur["text"].startswith(prev["text"])
    assert all(o["meta_info"]["finish_reason"] is None for o in outs[:-1])
    assert outs[-1]["meta_info"]["finish_reason"] == {"type": "length", "length": 40}
    assert sum(len(o["output_ids"]) for o in outs) == 40  # output_ids are per-chunk deltas
    assert outs[-1]["meta_info"]["completion_tokens"] == 40


async def test_natural_end_is_stop_with_the_eos_id(sim):
    async with sim() as (client, _):
        r = await client.post("/generate", json={"text": "x", "sampling_params": {"max_new_tokens": 100000}})
    meta = r.json()["meta_info"]
    assert meta["finish_reason"]["type"] == "stop"
    assert meta["finish_reason"]["matched"] == 1


async def test_input_ids_are_accepted_and_rid_honoured(sim):
    async with sim() as (client, _):
        r = await client.post(
            "/generate",
            json={"input_ids": [11, 12, 13], "rid": "r-1", "sampling_params": {"max_new_tokens": 2}},
        )
    assert r.json()["meta_info"]["id"] == "r-1"
    assert r.json()["meta_info"]["prompt_tokens"] == 3


async def test_generate_errors(sim):
    async with sim(context_length=10) as (client, _):
        missing = await client.post("/generate", json={"sampling_params": {}})
        too_long = await client.post("/generate", json={"input_ids": list(range(20))})
        streamed = await client.post("/generate", json={"input_ids": list(range(20)), "stream": True})
    assert missing.status_code == 400
    assert "error" in missing.json()
    assert too_long.status_code == 400
    assert "context length" in too_long.json()["error"]["message"]
    assert streamed.status_code == 200  # SGLang's /generate stream reports errors in-band
    assert "error" in sse_events(streamed.text)[0]
    assert sse_events(streamed.text)[-1] == "[DONE]"
