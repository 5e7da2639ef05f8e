"""The turn lifecycle and the outbox together: an answer nobody watched is pushed, one a client
watched to the end is not, and the outbox row is written with the answer."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from backend.db import models as m
from tests.chat.helpers import read_stream, wait_finished
from tests.conftest import make_settings, serve, sign_up


@pytest.fixture
def settings(database_url, tmp_path, fleet):
    # The simulated workers, and no dispatcher: the outbox rows stay where the test can see them.
    return make_settings(database_url, tmp_path, workers=fleet, SURGE_PUSH_DISPATCHER_ENABLED="false")


async def outbox_for(sessions, message_id: str) -> list[m.PushOutbox]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(m.PushOutbox).where(m.PushOutbox.message_id == uuid.UUID(message_id))
            )
        )


async def test_an_answer_nobody_watched_goes_to_the_outbox(app, sessions):
    async with serve(app) as client:
        alice = await sign_up(client)
        conversation = (await client.post("/v1/conversations", json={}, headers=alice.headers)).json()["id"]
        turn = (
            await client.post(
                f"/v1/conversations/{conversation}/messages",
                json={"content": "ping me"},
                headers=alice.headers,
            )
        ).json()
        answer = turn["assistant_message"]["id"]
        await wait_finished(client, answer, alice.headers)
    rows = await outbox_for(sessions, answer)
    assert len(rows) == 1
    assert str(rows[0].conversation_id) == conversation and str(rows[0].user_id) == alice.id


async def test_an_answer_streamed_to_its_client_sends_no_push(app, sessions):
    async with serve(app) as client:
        alice = await sign_up(client)
        conversation = (await client.post("/v1/conversations", json={}, headers=alice.headers)).json()["id"]
        events = await read_stream(
            client,
            "POST",
            f"/v1/conversations/{conversation}/messages",
            json={"content": "I am watching", "stream": True},
            headers=alice.headers,
        )
        answer = events[0].data["assistant_message"]["id"]
        assert events[-1].name == "done"
    assert await outbox_for(sessions, answer) == []
