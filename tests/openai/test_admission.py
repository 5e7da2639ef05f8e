"""The tier's promises hold on the OpenAI-compatible API: one quota window with conversation turns, the
degrade ladder's shedding, and a caller that hangs up cancels the request upstream."""

from __future__ import annotations

import asyncio

import openai
import pytest

from tests.chat.conftest import client_with
from tests.conftest import MODEL_ID, set_tier, sign_up
from tests.openai.conftest import QUESTION, async_openai, new_key, openai_error, worker_load
from tests.polling import until

__all__ = ["client_with"]


async def test_the_quota_counts_api_requests_and_turns_in_one_window(client_with):
    async with client_with([{}], SURGE_TIER_FREE_MESSAGES="2") as (client, _):
        user = await sign_up(client)
        api = async_openai(client, await new_key(client, user))
        answer = await api.chat.completions.create(model=MODEL_ID, messages=QUESTION, max_tokens=10)
        assert answer.choices[0].finish_reason == "length"
        conversation = await client.post("/v1/conversations", json={}, headers=user.headers)
        turn = await client.post(
            f"/v1/conversations/{conversation.json()['id']}/messages",
            json={"content": "hello"},
            headers=user.headers,
        )
        assert turn.status_code == 202, "the second of two"

        async def turn_finished() -> bool:
            usage = (await client.get("/v1/me/usage", headers=user.headers)).json()
            return bool(usage["used"]["messages"] == 2 and usage["used"]["concurrent_turns"] == 0)

        await until(turn_finished, what="both counted in the usage")
        with pytest.raises(openai.RateLimitError) as raised:
            await api.chat.completions.create(model=MODEL_ID, messages=QUESTION, max_tokens=10)
        assert raised.value.code == "insufficient_quota" and raised.value.type == "insufficient_quota"
        retry_after = int(raised.value.response.headers["retry-after"])
        assert 3 * 3600 - 120 < retry_after <= 3 * 3600, "until the first request leaves the window"
        raw = await client.post(
            "/openai/v1/chat/completions",
            json={"model": MODEL_ID, "messages": QUESTION},
            headers={"Authorization": f"Bearer {api.api_key}"},
        )
        assert raw.status_code == 429 and openai_error(raw)["code"] == "insufficient_quota"


async def test_at_degrade_level_4_a_free_keys_request_is_shed_with_retry_after(client_with, database_url):
    single_slow_slot = {"max_running_requests": 1, "sim_speedup": 5.0}
    async with client_with([single_slow_slot], SURGE_HEALTH_INTERVAL_S="0.1") as (client, _):
        admin, first, second = await sign_up(client), await sign_up(client), await sign_up(client)
        await set_tier(database_url, admin, "admin")

        async def capacity_learnt() -> bool:
            fleet = (await client.get("/v1/admin/fleet", headers=admin.headers)).json()
            return all(worker["max_running"] == 1 for worker in fleet["workers"])

        await until(capacity_learnt, within_s=5, what="the pool learnt the worker's capacity")
        holder = async_openai(client, await new_key(client, first))
        stream = await holder.chat.completions.create(model=MODEL_ID, messages=QUESTION, stream=True)
        await stream.__anext__()  # it holds the only slot
        overload = await client.put("/v1/admin/overload", json={"level": 4}, headers=admin.headers)
        assert overload.status_code == 200, overload.text

        shed = async_openai(client, await new_key(client, second))
        with pytest.raises(openai.APIStatusError) as raised:
            await shed.chat.completions.create(model=MODEL_ID, messages=QUESTION)
        assert raised.value.status_code == 503 and raised.value.code == "overloaded"
        assert int(raised.value.response.headers["retry-after"]) >= 1
        await stream.close()
        await client.put("/v1/admin/overload", json={"level": None}, headers=admin.headers)


async def test_a_caller_that_hangs_up_mid_stream_aborts_the_request_upstream(client_with):
    slow = {"sim_speedup": 2.0}
    async with client_with([slow]) as (client, sims):
        worker = sims[0].url
        api = async_openai(client, await new_key(client, await sign_up(client)))
        stream = await api.chat.completions.create(
            model=MODEL_ID,
            messages=QUESTION,
            stream=True,
            extra_body={"chat_template_kwargs": {"thinking": True}},
        )
        for _ in range(3):
            await stream.__anext__()
        assert await worker_load(worker) == 1, "the answer is being generated"
        await stream.close()

        async def aborted() -> bool:
            return await worker_load(worker) == 0

        await until(aborted, within_s=5, what="the worker stopped the request")
        # The slot is free again: another request runs at once.
        again = await api.chat.completions.create(model=MODEL_ID, messages=QUESTION, max_tokens=5)
        assert again.choices[0].message.content is not None
        await asyncio.sleep(0)
