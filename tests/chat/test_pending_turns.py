"""A turn's worker gets the prompt while the turn is still being stored (its prefill overlaps the commit):
nothing of it goes out or is stored before the commit, and a commit that fails leaves no trace of it."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from backend.conversations.tree import MessageTree
from tests.chat.helpers import check_log, concatenated, read_stream
from tests.chat.test_turns import new_conversation
from tests.conftest import MODEL_ID, sign_up
from tests.metric_samples import scrape
from tests.polling import until


async def test_a_turn_whose_storing_fails_is_dropped_and_its_worker_request_aborted(client_with, monkeypatch):
    async with client_with([{}]) as (client, sims):
        scheduler = sims[0].app.server.scheduler
        alice = await sign_up(client)
        conversation = await new_conversation(client, alice)
        before = await scrape(client)
        grow = MessageTree.grow

        async def failing_grow(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            # The worker is generating the answer before the turn is stored: then storing it fails.
            await until(lambda: scheduler.snapshot()["generation_tokens"] > 0, what="the worker answering")
            raise OperationalError("INSERT", {}, ConnectionRefusedError("the database went away"))

        monkeypatch.setattr(MessageTree, "grow", failing_grow)
        refused = await client.post(
            f"/v1/conversations/{conversation}/messages", json={"content": "hi"}, headers=alice.headers
        )
        assert refused.status_code == 503, refused.text
        await until(lambda: scheduler.snapshot()["requests_aborted"] == 1, what="the worker request aborted")
        tree = await client.get(f"/v1/conversations/{conversation}/messages", headers=alice.headers)
        assert tree.json()["data"] == []
        after = await scrape(client)
        assert after.added(before, "surge_turns_started_total", model=MODEL_ID) == 0

        # Nothing was left holding the user or the fleet: the next turn goes through.
        monkeypatch.setattr(MessageTree, "grow", grow)
        events = await read_stream(
            client,
            "POST",
            f"/v1/conversations/{conversation}/messages",
            json={"content": "hi again", "stream": True},
            headers=alice.headers,
        )
        check_log(events[1:])
        assert events[-1].name == "done" and events[-1].data["message"]["status"] == "complete"


@pytest.mark.parametrize("stream", [True, False])
async def test_an_answer_finished_before_its_turn_is_stored_ends_once_stored(
    client_with, monkeypatch, stream
):
    """The worker may finish a short answer before the commit: the answer's end waits for its row."""
    async with client_with([{"sim_speedup": 20.0}]) as (client, sims):
        scheduler = sims[0].app.server.scheduler
        alice = await sign_up(client)
        conversation = await new_conversation(client, alice)
        grow = MessageTree.grow

        async def slow_grow(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            await until(lambda: scheduler.snapshot()["requests_finished"] == 1, what="the answer finished")
            await grow(self, *args, **kwargs)

        monkeypatch.setattr(MessageTree, "grow", slow_grow)
        url = f"/v1/conversations/{conversation}/messages"
        body = {"content": "hello", "stream": stream}
        if stream:
            events = await read_stream(client, "POST", url, json=body, headers=alice.headers)
            answer = events[0].data["assistant_message"]["id"]
        else:
            accepted = await client.post(url, json=body, headers=alice.headers)
            assert accepted.status_code == 202
            answer = accepted.json()["assistant_message"]["id"]
            events = await read_stream(client, "GET", f"/v1/messages/{answer}/events", headers=alice.headers)
        log = events[1:] if stream else events
        check_log(log)
        assert log[0].name == "started"
        assert log[-1].name == "done"
        stored = (await client.get(f"/v1/messages/{answer}", headers=alice.headers)).json()
        assert stored["status"] == "complete"
        assert stored["content"] == concatenated(log, "content") != ""
