"""The request trace (``--sim-trace-file``): what a worker was sent and what it produced, one line each."""

from __future__ import annotations

import asyncio
import time

from loadtests.sglang_sim.chat_template import render_prompt
from loadtests.sglang_sim.trace import read_trace
from tests.sglang_sim.conftest import chat_body
from tests.sglang_sim.test_overload import _wait


async def test_each_finished_request_is_traced_with_its_ids_and_wall_clock_times(sim, tmp_path):
    path = tmp_path / "trace.jsonl"
    started = time.time()
    async with sim(sim_trace_file=str(path), enable_cache_report=True) as (client, _):
        first = chat_body("What is a radix tree?")
        answer = (await client.post("/v1/chat/completions", json=first)).json()
        text = answer["choices"][0]["message"]["content"]
        follow_up = chat_body("What is a radix tree?", text, "And a trie?", max_tokens=5)
        short = (await client.post("/v1/chat/completions", json=follow_up)).json()
    ended = time.time()

    traced = list(read_trace(path))
    assert [request.finish for request in traced] == ["stop", "length"]
    for request, body, response in zip(traced, (first, follow_up), (answer, short), strict=True):
        assert request.prompt_ids == render_prompt(body["messages"], "deepseek-r1")
        assert len(request.prompt_ids) == response["usage"]["prompt_tokens"]
        assert len(request.output_ids) == response["usage"]["completion_tokens"]
        assert started <= request.arrival <= request.finished <= ended
    assert len(traced[1].output_ids) == 5
    assert traced[0].rid != traced[1].rid


async def test_an_aborted_request_is_traced_with_the_output_it_got_so_far(sim, tmp_path):
    path = tmp_path / "trace.jsonl"
    async with sim(sim_speedup=1.0, sim_trace_file=str(path)) as (client, app):
        body = chat_body("abort me", stream=True, rid="victim", max_tokens=100000, ignore_eos=True)
        task = asyncio.create_task(client.post("/v1/chat/completions", json=body))
        running = app.server.scheduler.running
        await _wait(lambda: bool(running) and running[0].num_output >= 2)
        await client.post("/abort_request", json={"rid": "victim"})
        await task
    (request,) = read_trace(path)
    assert (request.rid, request.finish) == ("victim", "abort")
    assert 2 <= len(request.output_ids) < 100000


async def test_without_the_flag_nothing_is_traced(sim, tmp_path):
    async with sim() as (client, app):
        await client.post("/v1/chat/completions", json=chat_body("Hi"))
        assert app.server.scheduler.trace is None
    assert list(tmp_path.iterdir()) == []


def test_a_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "trace.jsonl"
    whole = '{"rid":"a","arrival":1.0,"finished":2.0,"finish":"stop","prompt_ids":[1,2],"output_ids":[3]}'
    path.write_text(whole + '\n{"rid":"b","arrival":1.5,"fin')
    (request,) = read_trace(path)
    assert (request.rid, request.prompt_ids, request.output_ids) == ("a", [1, 2], [3])
