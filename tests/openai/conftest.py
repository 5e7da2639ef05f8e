"""Helpers of the OpenAI-compatible API's tests: keys made through the API, the worker's own answer to
compare with, and OpenAI's client pointed at a Surge."""

from __future__ import annotations

from typing import Any

import httpx
from openai import AsyncOpenAI

from tests.conftest import MODEL_ID, Account
from tests.sdk.conftest import live_surge

# A live Surge on a thread of its own, for OpenAI's sync client.
__all__ = ["live_surge"]

QUESTION = [
    {"role": "system", "content": "You are a careful assistant."},
    {"role": "user", "content": "Explain in detail how a prefix cache speeds up a chat server."},
]


async def new_key(client: httpx.AsyncClient, account: Account, name: str = "laptop") -> str:
    response = await client.post("/v1/me/api_keys", json={"name": name}, headers=account.headers)
    assert response.status_code == 201, response.text
    secret: str = response.json()["secret"]
    return secret


def async_openai(client: httpx.AsyncClient, key: str) -> AsyncOpenAI:
    # No retries: a refusal must reach the test, not be waited out.
    return AsyncOpenAI(base_url=f"{client.base_url}/openai/v1", api_key=key, max_retries=0)


async def worker_answer(worker: str, messages: list[dict[str, str]], *, thinking: bool) -> dict[str, Any]:
    """What the simulated worker itself answers (its text is a function of the prompt)."""
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(
            f"{worker}/v1/chat/completions",
            json={
                "model": MODEL_ID,
                "messages": messages,
                "separate_reasoning": True,
                "chat_template_kwargs": {"thinking": thinking},
                "max_tokens": 3000,
            },
        )
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    return {**choice["message"], "finish_reason": choice["finish_reason"]}


async def worker_load(worker: str) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        load = (await http.get(f"{worker}/get_load")).json()
    return int(load[0]["num_reqs"])


def openai_error(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` of a response in OpenAI's shape, with the headers every refusal carries."""
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "code", "param"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert response.headers["x-request-id"]
    return error
