"""Regenerate and edit grow the message tree; Idempotency-Key makes a retried send create nothing new."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from backend.chat.idempotency import KeyPurge
from backend.db import models as m
from tests.chat.helpers import read_stream, wait_finished
from tests.chat.test_turns import new_conversation
from tests.conftest import error_of


async def send(client, account, conversation, **body):
    response = await client.post(
        f"/v1/conversations/{conversation}/messages", json=body, headers=account.headers
    )
    assert response.status_code == 202, response.text
    turn = response.json()
    await wait_finished(client, turn["assistant_message"]["id"], account.headers)
    return turn


async def test_regenerate_adds_a_sibling_answer_on_the_current_branch(client, alice):
    conversation = await new_conversation(client, alice)
    first = await send(client, alice, conversation, content="Name a colour")
    response = await client.post(
        f"/v1/messages/{first['assistant_message']['id']}/regenerate", json={}, headers=alice.headers
    )
    assert response.status_code == 202
    again = response.json()
    assert again["user_message"]["id"] == first["user_message"]["id"]
    assert again["assistant_message"]["parent_id"] == first["user_message"]["id"]
    assert again["assistant_message"]["id"] != first["assistant_message"]["id"]
    await wait_finished(client, again["assistant_message"]["id"], alice.headers)
    detail = (await client.get(f"/v1/conversations/{conversation}", headers=alice.headers)).json()
    assert [m["id"] for m in detail["messages"]] == [
        first["user_message"]["id"],
        again["assistant_message"]["id"],
    ]
    tree = (await client.get(f"/v1/conversations/{conversation}/messages", headers=alice.headers)).json()[
        "data"
    ]
    assert len(tree) == 3


async def test_regenerate_streams_when_asked(client, alice):
    conversation = await new_conversation(client, alice)
    first = await send(client, alice, conversation, content="Hi")
    events = await read_stream(
        client,
        "POST",
        f"/v1/messages/{first['assistant_message']['id']}/regenerate",
        json={"stream": True},
        headers=alice.headers,
    )
    assert events[0].name == "turn" and events[-1].name == "done"


async def test_editing_a_message_sends_a_sibling_and_switches_branch(client, alice):
    conversation = await new_conversation(client, alice)
    first = await send(client, alice, conversation, content="What is 2+2?")
    second = await send(
        client, alice, conversation, content="And 3+3?", parent_id=first["assistant_message"]["id"]
    )
    # Edit the second question: a sibling of it, under the same parent.
    edited = await send(
        client, alice, conversation, content="And 4+4?", parent_id=first["assistant_message"]["id"]
    )
    assert edited["user_message"]["parent_id"] == second["user_message"]["parent_id"]
    detail = (await client.get(f"/v1/conversations/{conversation}", headers=alice.headers)).json()
    assert [m["content"] for m in detail["messages"] if m["role"] == "user"] == ["What is 2+2?", "And 4+4?"]
    # Editing the very first message: parent_id null makes a second root.
    root = await send(client, alice, conversation, content="What is 5+5?", parent_id=None)
    detail = (await client.get(f"/v1/conversations/{conversation}", headers=alice.headers)).json()
    assert detail["messages"][0]["id"] == root["user_message"]["id"]


async def test_a_user_message_cannot_be_the_parent(client, alice):
    conversation = await new_conversation(client, alice)
    first = await send(client, alice, conversation, content="Hi")
    response = await client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"content": "nested", "parent_id": first["user_message"]["id"]},
        headers=alice.headers,
    )
    assert response.status_code == 400
    assert "parent_id" in error_of(response)["fields"]


async def test_same_idempotency_key_returns_the_original_turn(client, alice):
    conversation = await new_conversation(client, alice)
    headers = {**alice.headers, "Idempotency-Key": "send-123"}
    body = {"content": "Only once please"}
    first = await client.post(f"/v1/conversations/{conversation}/messages", json=body, headers=headers)
    retry = await client.post(f"/v1/conversations/{conversation}/messages", json=body, headers=headers)
    assert first.status_code == retry.status_code == 202
    assert retry.json()["assistant_message"]["id"] == first.json()["assistant_message"]["id"]
    assert retry.json()["user_message"]["id"] == first.json()["user_message"]["id"]
    tree = (await client.get(f"/v1/conversations/{conversation}/messages", headers=alice.headers)).json()[
        "data"
    ]
    assert len(tree) == 2


async def test_same_idempotency_key_with_stream_attaches_to_the_same_stream(client, alice):
    conversation = await new_conversation(client, alice)
    headers = {**alice.headers, "Idempotency-Key": "send-stream"}
    first = await client.post(
        f"/v1/conversations/{conversation}/messages", json={"content": "Hello"}, headers=headers
    )
    events = await read_stream(
        client,
        "POST",
        f"/v1/conversations/{conversation}/messages",
        json={"content": "Hello", "stream": True},
        headers=headers,
    )
    assert events[0].data["assistant_message"]["id"] == first.json()["assistant_message"]["id"]
    assert events[-1].name == "done"


async def test_same_idempotency_key_with_another_body_is_a_conflict(client, alice):
    conversation = await new_conversation(client, alice)
    headers = {**alice.headers, "Idempotency-Key": "send-456"}
    await client.post(f"/v1/conversations/{conversation}/messages", json={"content": "one"}, headers=headers)
    response = await client.post(
        f"/v1/conversations/{conversation}/messages", json={"content": "two"}, headers=headers
    )
    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"


async def test_idempotency_keys_are_per_user(client, alice, bob):
    alices = await new_conversation(client, alice)
    bobs = await new_conversation(client, bob)
    body = {"content": "same"}
    first = await client.post(
        f"/v1/conversations/{alices}/messages", json=body, headers={**alice.headers, "Idempotency-Key": "k"}
    )
    second = await client.post(
        f"/v1/conversations/{bobs}/messages", json=body, headers={**bob.headers, "Idempotency-Key": "k"}
    )
    assert second.status_code == 202
    assert second.json()["assistant_message"]["id"] != first.json()["assistant_message"]["id"]


async def test_concurrent_retries_with_one_key_create_one_turn(client, alice):
    conversation = await new_conversation(client, alice)
    headers = {**alice.headers, "Idempotency-Key": "raced"}
    responses = await asyncio.gather(
        *(
            client.post(
                f"/v1/conversations/{conversation}/messages", json={"content": "race"}, headers=headers
            )
            for _ in range(4)
        )
    )
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["assistant_message"]["id"] for r in responses}) == 1


async def test_a_key_reused_after_it_expired_starts_a_new_turn(client, sessions, alice):
    conversation = await new_conversation(client, alice)
    url = f"/v1/conversations/{conversation}/messages"
    headers = {**alice.headers, "Idempotency-Key": "daily"}
    first = await client.post(url, json={"content": "Good morning"}, headers=headers)
    assert first.status_code == 202
    await wait_finished(client, first.json()["assistant_message"]["id"], alice.headers)
    async with sessions() as session:
        await session.execute(
            update(m.IdempotencyKey).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    second = await client.post(url, json={"content": "Good morning"}, headers=headers)
    assert second.status_code == 202, second.text
    assert second.json()["assistant_message"]["id"] != first.json()["assistant_message"]["id"]
    # The key now stands for the new turn.
    retry = await client.post(url, json={"content": "Good morning"}, headers=headers)
    assert retry.json()["assistant_message"]["id"] == second.json()["assistant_message"]["id"]


async def test_expired_keys_are_deleted_in_the_background_and_live_ones_kept(client, sessions, alice):
    conversation = await new_conversation(client, alice)
    url = f"/v1/conversations/{conversation}/messages"
    turns = {}
    for key in ("yesterday", "today"):
        response = await client.post(
            url, json={"content": key}, headers={**alice.headers, "Idempotency-Key": key}
        )
        turns[key] = response.json()["assistant_message"]["id"]
        await wait_finished(client, turns[key], alice.headers)
    async with sessions() as session:
        await session.execute(
            update(m.IdempotencyKey)
            .where(m.IdempotencyKey.key == "yesterday")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    assert await KeyPurge(sessions).purge_expired() == 1
    async with sessions() as session:
        assert list(await session.scalars(select(m.IdempotencyKey.key))) == ["today"]
    retry = await client.post(
        url, json={"content": "today"}, headers={**alice.headers, "Idempotency-Key": "today"}
    )
    assert retry.json()["assistant_message"]["id"] == turns["today"]


async def test_a_retry_the_cap_would_refuse_now_gets_the_turn_it_created(client_with):
    """The first attempt was accepted and is generating, so the turns-at-once cap is reached: a new
    request is refused, but the retry gets its turn back."""
    from tests.conftest import sign_up

    async with client_with([{"sim_speedup": 1.0}], SURGE_TIER_FREE_CONCURRENT_TURNS="1") as (client, _):
        alice = await sign_up(client)
        conversation = await new_conversation(client, alice)
        url = f"/v1/conversations/{conversation}/messages"
        headers = {**alice.headers, "Idempotency-Key": "retry-me"}
        body = {"content": "think hard", "thinking": True}
        first = await client.post(url, json=body, headers=headers)
        assert first.status_code == 202
        other = await client.post(
            f"/v1/conversations/{await new_conversation(client, alice)}/messages",
            json={"content": "another"},
            headers=alice.headers,
        )
        assert other.status_code == 429
        retry = await client.post(url, json=body, headers=headers)
        assert retry.status_code == 202, retry.text
        assert retry.json()["assistant_message"]["id"] == first.json()["assistant_message"]["id"]


async def test_a_user_may_have_only_so_many_turns_generating(client_with):
    from tests.conftest import sign_up

    async with client_with([{"sim_speedup": 2.0}], SURGE_TIER_FREE_CONCURRENT_TURNS="2") as (client, _):
        alice = await sign_up(client)
        conversations = [await new_conversation(client, alice) for _ in range(3)]
        statuses = []
        for conversation in conversations:
            response = await client.post(
                f"/v1/conversations/{conversation}/messages",
                json={"content": "think hard", "thinking": True},
                headers=alice.headers,
            )
            statuses.append(response.status_code)
        assert statuses == [202, 202, 429]
        assert error_of(response)["code"] == "rate_limited"
        assert int(response.headers["Retry-After"]) > 0


async def test_sending_under_an_answer_still_generating_is_a_conflict(client_with):
    from tests.conftest import sign_up

    async with client_with([{"sim_speedup": 2.0}]) as (client, _):
        alice = await sign_up(client)
        conversation = await new_conversation(client, alice)
        first = (
            await client.post(
                f"/v1/conversations/{conversation}/messages", json={"content": "slow"}, headers=alice.headers
            )
        ).json()
        response = await client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"content": "next", "parent_id": first["assistant_message"]["id"]},
            headers=alice.headers,
        )
        assert response.status_code == 409


async def test_feedback_rates_an_answer_and_null_clears_it(client, alice):
    conversation = await new_conversation(client, alice)
    turn = await send(client, alice, conversation, content="Rate me")
    answer = turn["assistant_message"]["id"]
    rated = await client.put(
        f"/v1/messages/{answer}/feedback", json={"rating": "up", "comment": "nice"}, headers=alice.headers
    )
    assert rated.status_code == 200 and rated.json()["feedback"] == "up"
    cleared = await client.put(
        f"/v1/messages/{answer}/feedback", json={"rating": None}, headers=alice.headers
    )
    assert cleared.json()["feedback"] is None
    bad = await client.put(f"/v1/messages/{answer}/feedback", json={"rating": "meh"}, headers=alice.headers)
    assert bad.status_code == 400


async def test_every_turn_route_hides_other_users_messages(client, alice, bob):
    conversation = await new_conversation(client, alice)
    turn = await send(client, alice, conversation, content="private")
    answer = turn["assistant_message"]["id"]
    attempts = [
        client.post(f"/v1/conversations/{conversation}/messages", json={"content": "x"}, headers=bob.headers),
        client.post(f"/v1/messages/{answer}/regenerate", json={}, headers=bob.headers),
        client.get(f"/v1/messages/{answer}", headers=bob.headers),
        client.get(f"/v1/messages/{answer}/events", headers=bob.headers),
        client.post(f"/v1/messages/{answer}/cancel", headers=bob.headers),
        client.put(f"/v1/messages/{answer}/feedback", json={"rating": "down"}, headers=bob.headers),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 404, response.request.url
        assert error_of(response)["code"] == "not_found"


async def test_content_limits(client, alice):
    conversation = await new_conversation(client, alice)
    empty = await client.post(
        f"/v1/conversations/{conversation}/messages", json={"content": "  "}, headers=alice.headers
    )
    assert empty.status_code == 400
    too_long = await client.post(
        f"/v1/conversations/{conversation}/messages", json={"content": "x" * 32_001}, headers=alice.headers
    )
    assert too_long.status_code == 413
    assert error_of(too_long)["code"] == "payload_too_large"
