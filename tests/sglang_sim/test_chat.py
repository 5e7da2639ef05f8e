"""Conformance of /v1/chat/completions: stream order, reasoning, usage, cached tokens, finish reasons."""
# ruff: noqa: RUF003 - DeepSeek's special tokens are spelled with fullwidth bars

from __future__ import annotations

from loadtests.sglang_sim.tokenizer import EOS_ID
from tests.sglang_sim.conftest import chat_body, sse_events


async def test_stream_order_role_deltas_finish_usage_done(sim):
    async with sim(reasoning_parser="deepseek-r1") as (client, _):
        r = await client.post(
            "/v1/chat/completions",
            json=chat_body("Tell me a story", stream=True, stream_options={"include_usage": True}),
        )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    usage_chunk, finish_chunk, deltas = chunks[-1], chunks[-2], chunks[1:-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] > 0
    assert finish_chunk["choices"][0]["delta"] == {}
    assert finish_chunk["choices"][0]["finish_reason"] == "stop"
    assert finish_chunk["choices"][0]["matched_stop"] == EOS_ID
    kinds = [next(iter(c["choices"][0]["delta"])) for c in deltas]
    assert kinds[0] == "reasoning_content"
    assert kinds[-1] == "content"
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning_content")  # all reasoning, then all content
    assert all(c["choices"][0]["finish_reason"] is None for c in deltas)


async def test_streamed_deltas_concatenate_to_the_non_streamed_message(sim):
    async with sim(reasoning_parser="deepseek-r1") as (client, _):
        body = chat_body("Same prompt", max_tokens=3000)
        full = (await client.post("/v1/chat/completions", json=body)).json()
        events = sse_events((await client.post("/v1/chat/completions", json={**body, "stream": True})).text)
    deltas = [c["choices"][0]["delta"] for c in events[:-1] if c["choices"]]
    message = full["choices"][0]["message"]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == message["reasoning_content"]
    assert "".join(d.get("content", "") for d in deltas) == message["content"]
    assert full["object"] == "chat.completion"
    assert message["role"] == "assistant"


async def test_without_reasoning_parser_reasoning_stays_in_content(sim):
    async with sim() as (client, _):
        full = (await client.post("/v1/chat/completions", json=chat_body("Hi", max_tokens=20000))).json()
    message = full["choices"][0]["message"]
    assert message["reasoning_content"] is None
    assert "</think>" in message["content"]


async def test_separate_reasoning_false_keeps_reasoning_in_content(sim):
    async with sim(reasoning_parser="deepseek-r1") as (client, _):
        body = chat_body("Hi", max_tokens=20000, separate_reasoning=False)
        message = (await client.post("/v1/chat/completions", json=body)).json()["choices"][0]["message"]
    assert message["reasoning_content"] is None
    assert "</think>" in message["content"]


async def test_v31_thinking_switch_controls_reasoning(sim):
    async with sim(chat_template="deepseek-v3.1", reasoning_parser="deepseek-v3") as (client, _):
        off = (await client.post("/v1/chat/completions", json=chat_body("Q", max_tokens=20000))).json()
        on_body = chat_body("Q", max_tokens=40000, chat_template_kwargs={"thinking": True})
        on = (await client.post("/v1/chat/completions", json=on_body)).json()
    assert off["choices"][0]["message"]["reasoning_content"] is None
    assert off["usage"]["reasoning_tokens"] == 0
    assert on["choices"][0]["message"]["reasoning_content"]
    assert on["usage"]["reasoning_tokens"] > 0


async def test_max_tokens_and_max_completion_tokens_cap_with_length(sim):
    async with sim() as (client, _):
        a = (await client.post("/v1/chat/completions", json=chat_body("x", max_tokens=5))).json()
        b = (await client.post("/v1/chat/completions", json=chat_body("x", max_completion_tokens=7))).json()
    assert a["choices"][0]["finish_reason"] == "length"
    assert a["usage"]["completion_tokens"] == 5
    assert b["usage"]["completion_tokens"] == 7
    assert b["choices"][0]["matched_stop"] is None


async def test_ignore_eos_runs_to_max_tokens(sim):
    async with sim() as (client, _):
        body = chat_body("short", max_tokens=50000, ignore_eos=True, chat_template_kwargs={})
        r = (await client.post("/v1/chat/completions", json=body)).json()
    assert r["usage"]["completion_tokens"] == 50000
    assert r["choices"][0]["finish_reason"] == "length"


async def test_stop_string_ends_with_matched_stop_and_trims_the_text(sim):
    async with sim() as (client, _):
        first = (await client.post("/v1/chat/completions", json=chat_body("abc", max_tokens=200))).json()
        words = first["choices"][0]["message"]["content"].split()
        stop = words[5]
        r = (
            await client.post("/v1/chat/completions", json=chat_body("abc", max_tokens=200, stop=[stop]))
        ).json()
    choice = r["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["matched_stop"] == stop
    assert stop not in choice["message"]["content"]
    assert first["choices"][0]["message"]["content"].startswith(choice["message"]["content"])


async def test_rid_is_the_response_id(sim):
    async with sim() as (client, _):
        r = (
            await client.post("/v1/chat/completions", json=chat_body("x", max_tokens=2, rid="msg-42"))
        ).json()
    assert r["id"] == "msg-42"


async def test_same_prompt_gives_the_same_answer(sim):
    async with sim() as (client, _):
        a = (await client.post("/v1/chat/completions", json=chat_body("repeat me", temperature=0.7))).json()
        b = (await client.post("/v1/chat/completions", json=chat_body("repeat me"))).json()
        c = (await client.post("/v1/chat/completions", json=chat_body("another"))).json()
    assert a["choices"][0]["message"] == b["choices"][0]["message"] != c["choices"][0]["message"]


async def test_cached_tokens_reported_only_with_cache_report_and_a_hit(sim):
    body = chat_body("Hello cache", max_tokens=3)
    async with sim() as (client, _):
        await client.post("/v1/chat/completions", json=body)
        again = (await client.post("/v1/chat/completions", json=body)).json()
    assert again["usage"]["prompt_tokens_details"] is None
    async with sim(enable_cache_report=True) as (client, _):
        cold = (await client.post("/v1/chat/completions", json=body)).json()
        warm = (await client.post("/v1/chat/completions", json=body)).json()
    assert cold["usage"]["prompt_tokens_details"] is None  # N = 0: no details at all
    prompt = warm["usage"]["prompt_tokens"]
    assert warm["usage"]["prompt_tokens_details"] == {"cached_tokens": prompt - 1}  # last token never hits


async def test_second_turn_hits_first_turns_prompt_and_answer(sim):
    """Thinking off (V3.1): the answer follows the prompt in the KV cache, so turn 2 reuses both."""
    async with sim(chat_template="deepseek-v3.1", enable_cache_report=True) as (client, _):
        t1 = (await client.post("/v1/chat/completions", json=chat_body("First question"))).json()
        answer = t1["choices"][0]["message"]["content"]
        t2 = (
            await client.post("/v1/chat/completions", json=chat_body("First question", answer, "Second"))
        ).json()
    prompt1, completion1 = t1["usage"]["prompt_tokens"], t1["usage"]["completion_tokens"]
    # Cached: turn 1's prompt and its answer, all but the EOS (the last output token has no KV).
    assert t2["usage"]["prompt_tokens_details"]["cached_tokens"] == prompt1 + completion1 - 1


async def test_second_turn_does_not_hit_first_turns_reasoning(sim):
    """R1 drops earlier reasoning from the prompt: turn 2 diverges where turn 1's reasoning began."""
    async with sim(reasoning_parser="deepseek-r1", enable_cache_report=True) as (client, _):
        t1 = (await client.post("/v1/chat/completions", json=chat_body("Think about it"))).json()
        answer = t1["choices"][0]["message"]["content"]
        assert t1["usage"]["reasoning_tokens"] > 0
        t2 = (
            await client.post("/v1/chat/completions", json=chat_body("Think about it", answer, "More"))
        ).json()
    # Turn 1's prompt ends "<｜Assistant｜><think>\n"; turn 2 has "<｜Assistant｜>answer": 2 tokens fewer hit.
    assert t2["usage"]["prompt_tokens_details"]["cached_tokens"] == t1["usage"]["prompt_tokens"] - 2
