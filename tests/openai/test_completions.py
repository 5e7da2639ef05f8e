"""``/openai/v1/chat/completions`` driven by OpenAI's own Python client, sync and async, streamed and not:
the answer is the worker's, usage and cached tokens are reported, parameters are checked."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import MODEL_ID
from tests.openai.conftest import QUESTION, async_openai, new_key, openai_error, worker_answer

THINK = {"chat_template_kwargs": {"thinking": True}}


def unique_question() -> list[dict[str, str]]:
    """A prompt no worker has seen (so its prefix is not cached yet)."""
    return [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": f"Question {uuid.uuid4()}: why do caches help large language models?"},
    ]


def reasoning_of(part: Any) -> str | None:
    """``reasoning_content`` (not a field of OpenAI's models: an extra the client keeps)."""
    value: str | None = (part.model_extra or {}).get("reasoning_content")
    return value


async def test_a_completion_is_the_workers_answer_with_its_reasoning_and_usage(client, alice, fleet):
    api = async_openai(client, await new_key(client, alice))
    answer = await api.chat.completions.create(model=MODEL_ID, messages=QUESTION, extra_body=THINK)
    expected = await worker_answer(fleet[0], QUESTION, thinking=True)
    message = answer.choices[0].message
    assert (
        answer.object == "chat.completion" and answer.model == MODEL_ID and answer.id.startswith("chatcmpl-")
    )
    assert message.role == "assistant" and answer.choices[0].finish_reason == expected["finish_reason"]
    assert message.content == expected["content"] and message.content
    assert reasoning_of(message) == expected["reasoning_content"] and reasoning_of(message)
    usage = answer.usage
    assert usage is not None and usage.prompt_tokens > 20 and usage.completion_tokens > 10
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens is not None

    # Without the switch, an optional-thinking model does not think.
    plain = await api.chat.completions.create(model=MODEL_ID, messages=QUESTION)
    expected_plain = await worker_answer(fleet[0], QUESTION, thinking=False)
    assert plain.choices[0].message.content == expected_plain["content"]
    assert reasoning_of(plain.choices[0].message) is None and expected_plain.get("reasoning_content") is None


async def test_a_stream_is_the_workers_answer_and_a_repeated_prompt_is_served_from_cache(
    client, alice, fleet
):
    api = async_openai(client, await new_key(client, alice))
    question = unique_question()

    async def streamed() -> tuple[list[Any], str, str]:
        stream = await api.chat.completions.create(
            model=MODEL_ID,
            messages=question,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=THINK,
        )
        chunks = [chunk async for chunk in stream]
        deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
        content = "".join(delta.content or "" for delta in deltas)
        reasoning = "".join(reasoning_of(delta) or "" for delta in deltas)
        return chunks, content, reasoning

    chunks, content, reasoning = await streamed()
    expected = await worker_answer(fleet[0], question, thinking=True)
    assert content == expected["content"] and reasoning == expected["reasoning_content"] and reasoning
    assert all(chunk.object == "chat.completion.chunk" and chunk.id == chunks[0].id for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [expected["finish_reason"]]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens > 10
    assert all(chunk.usage is None for chunk in chunks[:-1])

    again, _, _ = await streamed()
    first_cached = last.usage.prompt_tokens_details.cached_tokens or 0  # type: ignore[union-attr]
    usage = again[-1].usage
    assert usage is not None and usage.prompt_tokens == last.usage.prompt_tokens
    assert (usage.prompt_tokens_details.cached_tokens or 0) > first_cached, (
        "routed where the prefix is cached"
    )


async def test_the_stream_ends_with_done_and_has_no_usage_chunk_unless_asked(client, alice):
    key = await new_key(client, alice)
    body = {"model": MODEL_ID, "messages": QUESTION, "stream": True, "max_tokens": 30}
    async with client.stream(
        "POST", "/openai/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = (await response.aread()).decode()
    lines = [line for line in text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    assert '"usage":{' not in text and '"finish_reason":"length"' in text


def test_the_sync_client_streamed_and_not(live_surge, fleet):
    with httpx.Client(base_url=live_surge.url) as http:
        session = http.post(
            "/v1/auth/signup", json={"email": "sync@example.com", "password": "correct horse"}
        )
        token = session.json()["access_token"]
        key = http.post(
            "/v1/me/api_keys", json={"name": "sync"}, headers={"Authorization": f"Bearer {token}"}
        ).json()["secret"]
    expected = asyncio.run(worker_answer(fleet[1], QUESTION, thinking=True))
    with OpenAI(base_url=f"{live_surge.url}/openai/v1", api_key=key, max_retries=0) as api:
        assert [model.id for model in api.models.list()] == [MODEL_ID]
        answer = api.chat.completions.create(model=MODEL_ID, messages=QUESTION, extra_body=THINK)
        assert answer.choices[0].message.content == expected["content"]
        assert reasoning_of(answer.choices[0].message) == expected["reasoning_content"]
        stream = api.chat.completions.create(model=MODEL_ID, messages=QUESTION, stream=True, extra_body=THINK)
        deltas = [chunk.choices[0].delta for chunk in stream if chunk.choices]
        assert "".join(d.content or "" for d in deltas) == expected["content"]
        assert "".join(reasoning_of(d) or "" for d in deltas) == expected["reasoning_content"]


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"n": 2}, "n"),
        ({"messages": []}, None),
        ({"temperature": 5}, None),
        ({"stop": ["a", "b", "c", "d", "e"]}, None),
        ({"messages": [{"role": "tool", "content": "x"}]}, None),
        ({"chat_template_kwargs": {"thinking": "yes"}}, "chat_template_kwargs"),
    ],
)
async def test_bad_parameters_are_a_400_in_openais_shape(client, alice, changes, param):
    key = await new_key(client, alice)
    body = {"model": MODEL_ID, "messages": QUESTION, **changes}
    with pytest.raises(openai.BadRequestError) as raised:
        await async_openai(client, key).chat.completions.create(
            model=MODEL_ID, messages=body["messages"], extra_body=changes
        )
    assert raised.value.code == "invalid_request_error" and raised.value.type == "invalid_request_error"
    if param is not None:
        assert raised.value.param == param
    raw = await client.post(
        "/openai/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert raw.status_code == 400 and openai_error(raw)["code"] == "invalid_request_error"


async def test_an_unknown_model_and_a_malformed_body(client, alice):
    key = await new_key(client, alice)
    with pytest.raises(openai.NotFoundError) as raised:
        await async_openai(client, key).chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert raised.value.code == "model_not_found" and raised.value.param == "model"
    malformed = await client.post(
        "/openai/v1/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400 and openai_error(malformed)["type"] == "invalid_request_error"


async def test_an_unknown_path_or_method_under_openai_v1_answers_in_openais_shape(client, alice):
    key = {"Authorization": f"Bearer {await new_key(client, alice)}"}
    unknown = await client.post("/openai/v1/embeddings", json={"input": "x"}, headers=key)
    assert unknown.status_code == 404 and openai_error(unknown)["code"] == "not_found"
    wrong_method = await client.get("/openai/v1/chat/completions", headers=key)
    assert wrong_method.status_code == 405 and openai_error(wrong_method)["type"] == "invalid_request_error"
    elsewhere = await client.get("/v1/nowhere", headers=alice.headers)
    assert elsewhere.status_code == 404 and set(elsewhere.json()["error"]) == {
        "code",
        "message",
        "request_id",
    }
