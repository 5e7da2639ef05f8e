"""Admission through the HTTP API: usage and quotas, message rate limits, the fair queue's events and
maximum wait, each degrade step by override, sign-ups paused, and Retry-After on every 429 and 503."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.chat.helpers import read_stream, wait_finished
from tests.conftest import MODEL_ID, Account, error_of, set_tier, sign_up
from tests.metric_samples import scrape
from tests.polling import until


async def new_conversation(client, account: Account) -> str:
    response = await client.post("/v1/conversations", json={}, headers=account.headers)
    return str(response.json()["id"])


@contextmanager
def count_statements() -> Iterator[list[str]]:
    """The SQL statements the requests handled inside the block run, on every engine of this process (not
    the replica's background work: its loops and turn tasks are named ``surge-*`` and ``turn-*``)."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        task = asyncio.current_task()
        if task is None or not task.get_name().startswith(("surge-", "turn-")):
            statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def assert_retry_after(response) -> dict:
    error = error_of(response)
    assert int(response.headers["Retry-After"]) >= 1
    assert int(response.headers["Retry-After"]) == error["retry_after_s"]
    return error


async def test_usage_counts_turns_and_tokens_and_the_quota_answers_429_with_resets_at(client_with):
    async with client_with([{}], SURGE_TIER_FREE_MESSAGES="2") as (client, _):
        alice = await sign_up(client)
        empty = (await client.get("/v1/me/usage", headers=alice.headers)).json()
        assert empty["tier"] == "free"
        assert empty["limits"] == {
            "messages": 2,
            "tokens": 200_000,
            "window_s": 10_800,
            "concurrent_turns": 2,
        }
        assert empty["used"] == {"messages": 0, "tokens": 0, "concurrent_turns": 0}
        conversation = await new_conversation(client, alice)
        first_sent = None
        parent = None
        for _ in range(2):
            body = {"content": "hello"} | ({"parent_id": parent} if parent else {})
            turn = await client.post(
                f"/v1/conversations/{conversation}/messages", json=body, headers=alice.headers
            )
            assert turn.status_code == 202, turn.text
            answer = await wait_finished(client, turn.json()["assistant_message"]["id"], alice.headers)
            first_sent = first_sent or answer["created_at"]
            parent = answer["id"]
        usage = (await client.get("/v1/me/usage", headers=alice.headers)).json()
        assert usage["used"]["messages"] == 2 and usage["used"]["tokens"] > 0
        refused = await client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"content": "one more", "parent_id": parent},
            headers=alice.headers,
        )
        assert refused.status_code == 429
        error = assert_retry_after(refused)
        assert error["code"] == "quota_exceeded"
        # The window frees its first turn three hours after it was sent.
        resets_at = datetime.fromisoformat(error["resets_at"])
        assert (resets_at - datetime.fromisoformat(first_sent)).total_seconds() == 10_800
        assert usage["resets_at"] == error["resets_at"]
        # Nothing was stored for the refused turn.
        tree = (await client.get(f"/v1/conversations/{conversation}/messages", headers=alice.headers)).json()
        assert len(tree["data"]) == 4


async def test_the_token_quota_counts_answer_tokens(client_with):
    async with client_with([{}], SURGE_TIER_FREE_TOKENS="1") as (client, _):
        alice = await sign_up(client)
        conversation = await new_conversation(client, alice)
        turn = await client.post(
            f"/v1/conversations/{conversation}/messages", json={"content": "hi"}, headers=alice.headers
        )
        answer = await wait_finished(client, turn.json()["assistant_message"]["id"], alice.headers)
        refused = await client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"content": "more", "parent_id": answer["id"]},
            headers=alice.headers,
        )
        assert refused.status_code == 429 and assert_retry_after(refused)["code"] == "quota_exceeded"


async def test_the_message_routes_are_rate_limited_per_user(client_with):
    async with client_with([{}], SURGE_ADMISSION_MESSAGES_PER_USER_PER_MIN="2") as (client, _):
        alice, bob = await sign_up(client), await sign_up(client)
        statuses = []
        for _ in range(3):
            conversation = await new_conversation(client, alice)
            response = await client.post(
                f"/v1/conversations/{conversation}/messages", json={"content": "hi"}, headers=alice.headers
            )
            statuses.append(response.status_code)
        assert statuses == [202, 202, 429]
        assert assert_retry_after(response)["code"] == "rate_limited"
        other = await client.post(
            f"/v1/conversations/{await new_conversation(client, bob)}/messages",
            json={"content": "hi"},
            headers=bob.headers,
        )
        assert other.status_code == 202, "another user has a budget of their own"


async def test_the_overload_routes_are_for_admins_only(client, alice):
    for response in (
        await client.put("/v1/admin/overload", json={"level": 2}, headers=alice.headers),
        await client.get("/v1/admin/fleet", headers=alice.headers),
    ):
        assert response.status_code == 403 and error_of(response)["code"] == "forbidden"


async def test_each_degrade_level_and_its_recovery(client_with, database_url):
    async with client_with([{}]) as (client, _):
        admin, free, plus = await sign_up(client), await sign_up(client), await sign_up(client)
        await set_tier(database_url, admin, "admin")
        await set_tier(database_url, plus, "plus")

        async def overload(**body):
            response = await client.put("/v1/admin/overload", json=body, headers=admin.headers)
            assert response.status_code == 200, response.text
            return response.json()

        async def turn(account: Account):
            conversation = await new_conversation(client, account)
            return await client.post(
                f"/v1/conversations/{conversation}/messages",
                json={"content": "think about it", "thinking": True, "stream": True},
                headers=account.headers,
            )

        async def events(account: Account):
            conversation = await new_conversation(client, account)
            return await read_stream(
                client,
                "POST",
                f"/v1/conversations/{conversation}/messages",
                json={"content": "think about it", "thinking": True, "stream": True},
                headers=account.headers,
            )

        bad = await client.put("/v1/admin/overload", json={"level": 7}, headers=admin.headers)
        assert bad.status_code == 400 and error_of(bad)["code"] == "validation_error"

        # Level 1: free answers get a smaller budget, and the stream says so first.
        state = await overload(level=1)
        assert state["degrade_level"] == 1 and state["override_level"] == 1
        stream = await events(free)
        degraded = [e for e in stream if e.name == "degraded"]
        assert degraded and degraded[0].seq == 1
        assert degraded[0].data["changes"] == {"max_tokens": 2048} and degraded[0].data["reason"]
        assert stream[-1].name == "done"
        assert not [e for e in await events(plus) if e.name == "degraded"]

        # Level 2: free turns lose reasoning; paying users keep it.
        await overload(level=2)
        stream = await events(free)
        assert next(e for e in stream if e.name == "degraded").data["changes"]["thinking"] is False
        assert not [e for e in stream if e.name == "reasoning"]
        assert stream[-1].data["message"]["reasoning"] is None
        assert [e for e in await events(plus) if e.name == "reasoning"]

        # Level 3: sign-ups pause.
        state = await overload(level=3)
        assert state["signups_open"] is False
        paused = await client.post(
            "/v1/auth/signup", json={"email": "late@example.com", "password": "longenough"}
        )
        assert paused.status_code == 503 and assert_retry_after(paused)["code"] == "signups_paused"

        # Level 4: free turns that would have to wait are refused (see the single-slot test below); with
        # room on the fleet they still run, degraded; plus answers get shorter too.
        await overload(level=4)
        stream = await events(free)
        assert stream[-1].name == "done"
        assert next(e for e in stream if e.name == "degraded").data["changes"]["thinking"] is False
        stream = await events(plus)
        assert stream[-1].name == "done"
        assert next(e for e in stream if e.name == "degraded").data["changes"] == {"max_tokens": 2048}

        # Back to automatic: everything as normal again.
        state = await overload(level=None)
        assert state["degrade_level"] == 0 and state["signups_open"] is True
        assert (
            await client.post("/v1/auth/signup", json={"email": "late@example.com", "password": "longenough"})
        ).status_code == 201
        assert not [e for e in await events(free) if e.name == "degraded"]

        # Sign-ups can be closed by hand at any level.
        await overload(signups_open=False)
        closed = await client.post(
            "/v1/auth/signup", json={"email": "later@example.com", "password": "longenough"}
        )
        assert closed.status_code == 503 and assert_retry_after(closed)["code"] == "signups_paused"
        fleet = (await client.get("/v1/admin/fleet", headers=admin.headers)).json()
        assert fleet["admission"]["signups_override"] is False


async def test_after_a_pause_signups_come_back_a_few_at_a_time(client_with, database_url):
    async with client_with([{}], SURGE_ADMISSION_OVERLOADED_SIGNUPS_PER_MIN="2") as (client, _):
        admin = await sign_up(client)
        await set_tier(database_url, admin, "admin")
        await client.put("/v1/admin/overload", json={"level": 2}, headers=admin.headers)
        answers = [
            await client.post(
                "/v1/auth/signup", json={"email": f"n{i}@example.com", "password": "longenough"}
            )
            for i in range(3)
        ]
        assert [a.status_code for a in answers] == [201, 201, 503]
        assert assert_retry_after(answers[2])["code"] == "signups_paused"
        await client.put("/v1/admin/overload", json={"level": None}, headers=admin.headers)
        late = await client.post(
            "/v1/auth/signup", json={"email": "n9@example.com", "password": "longenough"}
        )
        assert late.status_code == 201, "back to normal: no ration"


async def wait_for_capacity(client, admin: Account, max_running: int) -> None:
    """The pool learns each worker's max_running_requests from /server_info at its first health check."""

    async def learnt() -> bool:
        fleet = (await client.get("/v1/admin/fleet", headers=admin.headers)).json()
        return all(worker["max_running"] == max_running for worker in fleet["workers"])

    await until(learnt, within_s=5, every_s=0.05, what="the pool learnt the worker's capacity")


async def wait_for_queue(client, admin: Account, *, holding: int, waiting: int) -> None:
    """Until the fair queue holds and waits exactly so many turns (a turn is accepted before it queues)."""

    async def reached() -> bool:
        fleet = (await client.get("/v1/admin/fleet", headers=admin.headers)).json()
        queue = fleet["admission"]["queues"].get(MODEL_ID, {"holding": 0, "waiting": 0})
        return (queue["holding"], queue["waiting"]) == (holding, waiting)

    await until(reached, every_s=0.05, what=f"{holding} holding and {waiting} waiting")


async def test_turns_beyond_the_fleet_queue_with_positions_and_paying_users_go_first(
    client_with, database_url
):
    slow_single_slot = {"max_running_requests": 1, "sim_speedup": 10.0}
    async with client_with([slow_single_slot], SURGE_HEALTH_INTERVAL_S="0.1") as (client, _):
        admin, first, free, plus = [await sign_up(client) for _ in range(4)]
        await set_tier(database_url, admin, "admin")
        await set_tier(database_url, plus, "plus")
        await wait_for_capacity(client, admin, 1)

        async def send(account: Account) -> str:
            conversation = await new_conversation(client, account)
            response = await client.post(
                f"/v1/conversations/{conversation}/messages",
                json={"content": "a long question", "thinking": True},
                headers=account.headers,
            )
            assert response.status_code == 202, response.text
            return str(response.json()["assistant_message"]["id"])

        holding = await send(first)
        await wait_for_queue(client, admin, holding=1, waiting=0)
        free_turn = await send(free)
        await wait_for_queue(client, admin, holding=1, waiting=1)
        plus_turn = await send(plus)
        free_events = asyncio.create_task(
            read_stream(client, "GET", f"/v1/messages/{free_turn}/events", headers=free.headers)
        )
        plus_events = asyncio.create_task(
            read_stream(client, "GET", f"/v1/messages/{plus_turn}/events", headers=plus.headers)
        )
        free_stream, plus_stream = await asyncio.wait_for(asyncio.gather(free_events, plus_events), 120)

        queued = [e.data for e in free_stream if e.name == "queued"]
        assert queued[0]["position"] == 1 and queued[0]["estimated_wait_s"] >= 0
        assert [q["position"] for q in queued][:2] == [1, 2], "the plus turn that arrived later went ahead"
        assert [e.data["position"] for e in plus_stream if e.name == "queued"] == [1]
        assert free_stream[-1].name == plus_stream[-1].name == "done"
        finished = {
            turn: (await wait_finished(client, turn, account.headers))
            for turn, account in ((holding, first), (free_turn, free), (plus_turn, plus))
        }
        assert finished[plus_turn]["completed_at"] < finished[free_turn]["completed_at"]


async def test_a_turn_that_waits_past_the_maximum_fails_overloaded_and_keeps_the_user_message(
    client_with, database_url
):
    slow_single_slot = {"max_running_requests": 1, "sim_speedup": 2.0}
    async with client_with(
        [slow_single_slot], SURGE_HEALTH_INTERVAL_S="0.1", SURGE_ADMISSION_MAX_QUEUE_WAIT_S="0.5"
    ) as (client, _):
        admin, first, second = await sign_up(client), await sign_up(client), await sign_up(client)
        await set_tier(database_url, admin, "admin")
        await wait_for_capacity(client, admin, 1)
        occupied = await new_conversation(client, first)
        occupy = {
            "path": f"/v1/conversations/{occupied}/messages",
            "json": {"content": "occupy the only slot", "thinking": True},
            "headers": {**first.headers, "Idempotency-Key": "occupy-1"},
        }
        accepted = await client.post(occupy["path"], json=occupy["json"], headers=occupy["headers"])
        assert accepted.status_code == 202
        await wait_for_queue(client, admin, holding=1, waiting=0)
        conversation = await new_conversation(client, second)
        before = await scrape(client)
        stream = await read_stream(
            client,
            "POST",
            f"/v1/conversations/{conversation}/messages",
            json={"content": "my turn?", "stream": True},
            headers=second.headers,
        )
        assert [e.name for e in stream] == ["turn", "queued", "error"]
        assert stream[-1].data["code"] == "overloaded" and stream[-1].data["retry_after_s"] > 0
        tree = (await client.get(f"/v1/conversations/{conversation}/messages", headers=second.headers)).json()
        user_message, answer = tree["data"]
        assert user_message["content"] == "my turn?" and answer["status"] == "failed"
        shed_after_waiting = {"model": MODEL_ID, "decision": "shed", "reason": "max_wait"}
        assert (await scrape(client)).added(
            before, "surge_admission_decisions_total", **shed_after_waiting
        ) == 1
        # At level 4 a free turn that would have to wait is refused at once, before anything is stored.
        await client.put("/v1/admin/overload", json={"level": 4}, headers=admin.headers)
        with count_statements() as statements:
            shed = await client.post(
                f"/v1/conversations/{conversation}/messages",
                json={"content": "again?", "parent_id": answer["id"]},
                headers=second.headers,
            )
        assert shed.status_code == 503 and assert_retry_after(shed)["code"] == "overloaded"
        # Refusing is cheap: the user and the conversation are read; no lock, no quota query, no write.
        assert len(statements) == 2, statements
        tree = (await client.get(f"/v1/conversations/{conversation}/messages", headers=second.headers)).json()
        assert len(tree["data"]) == 2
        regenerate = await client.post(
            f"/v1/messages/{answer['id']}/regenerate", json={}, headers=second.headers
        )
        assert regenerate.status_code == 503 and assert_retry_after(regenerate)["code"] == "overloaded"
        # A phone retrying a send that was accepted before the shedding began gets its turn back.
        again = await client.post(occupy["path"], json=occupy["json"], headers=occupy["headers"])
        assert again.status_code == 202, again.text
        assert again.json()["user_message"]["id"] == accepted.json()["user_message"]["id"]
