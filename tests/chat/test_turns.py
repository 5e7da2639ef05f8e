"""Sending messages and receiving answers: the turn routes of API.md against simulated SGLang workers."""

from __future__ import annotations

import asyncio

from tests.chat.helpers import check_log, concatenated, read_stream, wait_finished
from tests.conftest import error_of


async def new_conversation(client, account, **body) -> str:
    return (await client.post("/v1/conversations", json=body, headers=account.headers)).json()["id"]


async def test_send_answers_202_with_both_messages_and_the_answer_arrives(client, alice):
    conversation = await new_conversation(client, alice)
    response = await client.post(
        f"/v1/conversations/{conversation}/messages", json={"content": "Hello there"}, headers=alice.headers
    )
    assert response.status_code == 202
    body = response.json()
    assert body["user_message"]["role"] == "user" and body["user_message"]["status"] == "complete"
    answer = body["assistant_message"]
    assert answer["status"] == "queued" and answer["parent_id"] == body["user_message"]["id"]
    finished = await wait_finished(client, answer["id"], alice.headers)
    assert finished["status"] == "complete"
    assert finished["content"] and finished["reasoning"] is None
    assert finished["finish_reason"] in ("stop", "length")
    usage = finished["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert finished["model"] == "deepseek-v3.1" and finished["completed_at"]


async def test_streamed_text_equals_the_stored_text(client, alice):
    conversation = await new_conversation(client, alice)
    events = await read_stream(
        client,
        "POST",
        f"/v1/conversations/{conversation}/messages",
        json={"content": "Why is the sky blue?", "thinking": True, "stream": True},
        headers=alice.headers,
    )
    assert events[0].name == "turn" and events[0].seq is None
    assert set(events[0].data) == {"user_message", "assistant_message"}
    log = events[1:]
    check_log(log)
    assert log[0].name == "started" and log[0].data == {"model": "deepseek-v3.1"}
    final = log[-1].data["message"]
    assert log[-1].name == "done" and final["status"] == "complete"
    assert concatenated(log, "reasoning") == final["reasoning"] and final["reasoning"]
    assert concatenated(log, "content") == final["content"] and final["content"]
    stored = (await client.get(f"/v1/messages/{final['id']}", headers=alice.headers)).json()
    assert stored["content"] == final["content"] and stored["reasoning"] == final["reasoning"]


async def test_an_unknown_model_is_a_validation_error(client, alice):
    conversation = await new_conversation(client, alice)
    response = await client.post(
        f"/v1/conversations/{conversation}/messages", json={"content": "hi", "model": "nope"}, headers=alice.headers
    )
    assert response.status_code == 400
    assert "model" in error_of(response)["fields"]


async def test_models_lists_the_configured_models(client, alice):
    response = await client.get("/v1/models", headers=alice.headers)
    assert response.json() == {
        "data": [
            {
                "id": "deepseek-v3.1",
                "display_name": "DeepSeek V3.1 (simulated)",
                "thinking": "optional",
                "context_tokens": 131072,
                "max_output_tokens": 3000,
            }
        ]
    }
