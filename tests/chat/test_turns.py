"""Sending messages and receiving answers: the turn routes of API.md against simulated SGLang workers."""

from __future__ import annotations

import asyncio
import uuid

from tests.chat.helpers import check_log, concatenated, parse_sse, read_stream, read_until, wait_finished
from tests.conftest import error_of, sign_up


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
        f"/v1/conversations/{conversation}/messages",
        json={"content": "hi", "model": "nope"},
        headers=alice.headers,
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


async def test_resuming_after_every_seq_replays_exactly_the_rest(client, alice):
    conversation = await new_conversation(client, alice)
    turn = (
        await client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"content": "Tell me about tides", "thinking": True},
            headers=alice.headers,
        )
    ).json()
    answer = turn["assistant_message"]["id"]
    full = await read_stream(client, "GET", f"/v1/messages/{answer}/events", headers=alice.headers)
    check_log(full)
    for after in range(len(full)):
        resumed = await read_stream(
            client, "GET", f"/v1/messages/{answer}/events?after={after}", headers=alice.headers
        )
        assert [(e.seq, e.name, e.data) for e in resumed] == [(e.seq, e.name, e.data) for e in full[after:]]
    # Last-Event-ID, as EventSource sends it on reconnect, means the same as ?after=.
    by_header = await read_stream(
        client, "GET", f"/v1/messages/{answer}/events", headers={**alice.headers, "Last-Event-ID": "2"}
    )
    assert [e.seq for e in by_header] == [e.seq for e in full[2:]]


async def test_resuming_mid_stream_continues_without_gap_or_duplicate(client, alice):
    conversation = await new_conversation(client, alice)
    turn = (
        await client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"content": "A long story please", "thinking": True},
            headers=alice.headers,
        )
    ).json()
    answer = turn["assistant_message"]["id"]
    first = await read_until(client, f"/v1/messages/{answer}/events", count=3, headers=alice.headers)
    rest = await read_stream(
        client, "GET", f"/v1/messages/{answer}/events?after={first[-1].seq}", headers=alice.headers
    )
    combined = first + rest
    check_log(combined)
    final = combined[-1].data["message"]
    assert concatenated(combined, "reasoning") == (final["reasoning"] or "")
    assert concatenated(combined, "content") == final["content"]


async def test_hanging_up_does_not_stop_generation(client, alice):
    conversation = await new_conversation(client, alice)
    events = []
    async with client.stream(
        "POST",
        f"/v1/conversations/{conversation}/messages",
        json={"content": "Explain photosynthesis", "thinking": True, "stream": True},
        headers=alice.headers,
    ) as response:
        async for chunk in response.aiter_text():
            events.extend(parse_sse(chunk)[0])
            if len(events) >= 2:
                break  # the phone goes to sleep
    answer = events[0].data["assistant_message"]["id"]
    finished = await wait_finished(client, answer, alice.headers)
    assert finished["status"] == "complete" and finished["usage"]["completion_tokens"] > 0
    replay = await read_stream(client, "GET", f"/v1/messages/{answer}/events", headers=alice.headers)
    assert concatenated(replay, "reasoning") == (finished["reasoning"] or "")
    assert concatenated(replay, "content") == finished["content"]


async def start_a_slow_answer(client, account) -> tuple[str, list]:
    """A thinking answer on a slow worker, and the first events its stream delivered (it is mid-way)."""
    conversation = await new_conversation(client, account)
    turn = (
        await client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"content": "Stream me", "thinking": True},
            headers=account.headers,
        )
    ).json()
    answer = turn["assistant_message"]["id"]
    seen = await read_until(client, f"/v1/messages/{answer}/events", count=3, headers=account.headers)
    assert [event.name for event in seen] == ["started", "reasoning", "reasoning"]
    return answer, seen


async def test_get_message_shows_the_text_so_far_while_streaming(client_with):
    # A slow worker keeps the answer streaming while the test looks, and no checkpoint reaches the
    # database meanwhile: the text can only come from the live turn.
    async with client_with([{"sim_speedup": 2.0}], SURGE_CHECKPOINT_INTERVAL_S="3600") as (client, _):
        alice = await sign_up(client)
        answer, seen = await start_a_slow_answer(client, alice)
        during = (await client.get(f"/v1/messages/{answer}", headers=alice.headers)).json()
        # Still going.
        assert during["status"] in ("queued", "streaming") and during["completed_at"] is None
        assert during["reasoning"].startswith(concatenated(seen, "reasoning"))
        cancelled = (await client.post(f"/v1/messages/{answer}/cancel", headers=alice.headers)).json()
        assert cancelled["status"] == "cancelled"
        assert cancelled["reasoning"].startswith(during["reasoning"])


async def test_get_message_of_an_answer_streaming_says_streaming(client_with):
    async with client_with([{"sim_speedup": 2.0}], SURGE_CHECKPOINT_INTERVAL_S="3600") as (client, _):
        alice = await sign_up(client)
        answer, _ = await start_a_slow_answer(client, alice)
        during = (await client.get(f"/v1/messages/{answer}", headers=alice.headers)).json()
        await client.post(f"/v1/messages/{answer}/cancel", headers=alice.headers)
        assert during["status"] == "streaming"


async def test_the_conversation_and_its_tree_show_a_streaming_answers_text_so_far(client_with):
    """The row holds an answer's text only once it ends; reading the conversation mid-answer still shows
    what was generated so far (as GET /v1/messages/{id} does)."""
    from tests.conftest import sign_up

    async with client_with([{"sim_speedup": 3.0}]) as (client, _):
        alice = await sign_up(client)
        conversation = await new_conversation(client, alice)
        turn = await client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"content": "think slowly", "thinking": True},
            headers=alice.headers,
        )
        answer = turn.json()["assistant_message"]["id"]
        await read_until(client, f"/v1/messages/{answer}/events", count=3, headers=alice.headers)
        detail = (await client.get(f"/v1/conversations/{conversation}", headers=alice.headers)).json()
        tree = (await client.get(f"/v1/conversations/{conversation}/messages", headers=alice.headers)).json()
        shown = [detail["messages"][-1], tree["data"][-1]]
        assert [message["id"] for message in shown] == [answer, answer]
        assert all(message["status"] in ("queued", "streaming") and message["reasoning"] for message in shown)
        await client.post(f"/v1/messages/{answer}/cancel", headers=alice.headers)
        stored = (await client.get(f"/v1/messages/{answer}", headers=alice.headers)).json()
        assert all(stored["reasoning"].startswith(message["reasoning"]) for message in shown)


async def test_cancel_stops_generation_upstream_and_keeps_the_partial_text(client_with):
    async with client_with([{"sim_speedup": 2.0}]) as (client, sims):
        alice = await sign_up(client)
        conversation = await new_conversation(client, alice)
        turn = (
            await client.post(
                f"/v1/conversations/{conversation}/messages",
                json={"content": "Write a very long essay", "thinking": True},
                headers=alice.headers,
            )
        ).json()
        answer = turn["assistant_message"]["id"]
        await read_until(client, f"/v1/messages/{answer}/events", count=3, headers=alice.headers)
        response = await client.post(f"/v1/messages/{answer}/cancel", headers=alice.headers)
        assert response.status_code == 200
        cancelled = response.json()
        assert cancelled["status"] == "cancelled" and cancelled["finish_reason"] == "cancelled"
        assert cancelled["reasoning"] or cancelled["content"]
        events = await read_stream(client, "GET", f"/v1/messages/{answer}/events", headers=alice.headers)
        check_log(events)
        assert events[-1].name == "done" and events[-1].data["message"]["status"] == "cancelled"
        assert concatenated(events, "reasoning") == (cancelled["reasoning"] or "")
        # The simulated worker saw the abort, and stopped generating.
        for _ in range(50):
            if sims[0].app.server.scheduler.snapshot()["requests_aborted"] == 1:
                break
            await asyncio.sleep(0.05)
        assert sims[0].app.server.scheduler.snapshot()["requests_aborted"] == 1


async def test_cancelling_a_finished_answer_changes_nothing(client, alice):
    conversation = await new_conversation(client, alice)
    turn = (
        await client.post(
            f"/v1/conversations/{conversation}/messages", json={"content": "Short"}, headers=alice.headers
        )
    ).json()
    finished = await wait_finished(client, turn["assistant_message"]["id"], alice.headers)
    response = await client.post(f"/v1/messages/{finished['id']}/cancel", headers=alice.headers)
    assert response.status_code == 200 and response.json()["status"] == "complete"


async def test_an_untitled_conversation_is_named_after_its_first_answer(database_url, tmp_path, fleet):
    from backend.app import create_app
    from tests.conftest import make_settings, serve

    app = create_app(make_settings(database_url, tmp_path, workers=fleet, SURGE_AUTO_TITLES="true"))
    async with serve(app) as client:
        alice = await sign_up(client)
        untitled = await new_conversation(client, alice)
        titled = await new_conversation(client, alice, title="Mine")
        for conversation in (untitled, titled):
            turn = (
                await client.post(
                    f"/v1/conversations/{conversation}/messages",
                    json={"content": "Plan a trip"},
                    headers=alice.headers,
                )
            ).json()
            await wait_finished(client, turn["assistant_message"]["id"], alice.headers)
        for _ in range(100):
            title = (await client.get(f"/v1/conversations/{untitled}", headers=alice.headers)).json()[
                "conversation"
            ]["title"]
            if title:
                break
            await asyncio.sleep(0.05)
        assert title and len(title) <= 80 and "\n" not in title
        kept = (await client.get(f"/v1/conversations/{titled}", headers=alice.headers)).json()[
            "conversation"
        ]["title"]
        assert kept == "Mine"


def test_titles_are_cleaned_up():
    from backend.chat.titles import clean_title

    assert clean_title('"Trip to Kyoto."\nmore text') == "Trip to Kyoto"
    assert clean_title("## **Tides**") == "Tides"
    assert clean_title("   \n  ") is None
    assert len(clean_title("word " * 50) or "") <= 80


async def test_partial_text_is_checkpointed_to_the_database_while_streaming(client_with, database_url):
    """Without a shared event log (embedded), the database itself (not the API, which fills in live text)
    holds the text so far within a second or so: that is what survives this process dying. The rows are
    marked streaming and the text is appended in pieces (never the whole text rewritten), and the pieces
    add up to what the API shows. Two turns at once, so that each checkpoint is one statement executed for
    many rows (the case PostgreSQL's driver is strict about)."""
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import create_async_engine

    from backend.db import models as m
    from tests.conftest import sign_up

    async with client_with([{"sim_speedup": 3.0}]) as (client, _):
        alice = await sign_up(client)
        answers = []
        for _ in range(2):
            conversation = await new_conversation(client, alice)
            sent = await client.post(
                f"/v1/conversations/{conversation}/messages",
                json={"content": "think slowly", "thinking": True},
                headers=alice.headers,
            )
            answers.append(uuid.UUID(sent.json()["assistant_message"]["id"]))
        engine = create_async_engine(database_url)
        try:
            for _ in range(100):
                async with engine.connect() as connection:
                    rows = (
                        await connection.execute(
                            select(m.Message.id, m.Message.status, m.Message.reasoning).where(
                                m.Message.id.in_(answers)
                            )
                        )
                    ).all()
                    chunks = (
                        await connection.execute(
                            select(m.message_chunk.c.message_id, m.message_chunk.c.reasoning)
                            .where(m.message_chunk.c.message_id.in_(answers))
                            .order_by(m.message_chunk.c.message_id, m.message_chunk.c.last_seq)
                        )
                    ).all()
                assert all(row.status in ("queued", "streaming") for row in rows), "finished unseen"
                # While streaming, the row's own text stays empty: the text is only ever appended.
                assert all(not row.reasoning for row in rows)
                stored = {
                    answer: "".join(c.reasoning for c in chunks if c.message_id == answer)
                    for answer in answers
                }
                if all(row.status == "streaming" for row in rows) and all(
                    len([c for c in chunks if c.message_id == answer]) >= 2 for answer in answers
                ):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("no checkpoint reached the database while the answers streamed")
            for answer_id in answers:
                shown = (await client.get(f"/v1/messages/{answer_id}", headers=alice.headers)).json()
                assert shown["reasoning"].startswith(stored[answer_id]) and stored[answer_id]
        finally:
            await engine.dispose()
        for answer_id in answers:
            await client.post(f"/v1/messages/{answer_id}/cancel", headers=alice.headers)
