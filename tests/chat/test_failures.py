"""What happens when a worker fails: before the first token another one is tried; after it, the turn
ends with ``error`` and keeps the text the user already saw."""

from __future__ import annotations

from tests.chat.helpers import check_log, concatenated, read_stream, wait_finished
from tests.chat.test_turns import new_conversation
from tests.conftest import MODEL_ID, sign_up
from tests.metric_samples import scrape
from tests.polling import until


async def test_a_worker_refusing_before_the_first_token_is_replaced_by_another(client_with):
    workers = [{"sim_fault_refuse_rate": 1.0}, {}]
    async with client_with(workers, SURGE_ROUTING_POLICY="round_robin") as (client, sims):
        refusing, healthy = (sim.app.server.scheduler for sim in sims)
        alice = await sign_up(client)
        conversation = await new_conversation(client, alice)
        before = await scrape(client)
        outcomes = []
        for index in range(4):
            turn = (
                await client.post(
                    f"/v1/conversations/{conversation}/messages",
                    json={"content": f"hello {index}"},
                    headers=alice.headers,
                )
            ).json()
            outcomes.append(await wait_finished(client, turn["assistant_message"]["id"], alice.headers))
        assert {message["status"] for message in outcomes} == {"complete"}
        assert all(message["content"] for message in outcomes)
        # Every refusal was followed by a retry on the other worker, which answered all four turns.
        refused = refusing.snapshot()["requests_rejected"]
        assert refused >= 1, "round robin sent no turn to the refusing worker first"
        assert refusing.snapshot()["requests_finished"] == 0
        assert healthy.snapshot()["requests_finished"] == 4
        after = await scrape(client)
        assert after.added(before, "surge_upstream_retries_total", model=MODEL_ID) == refused


async def test_every_worker_refusing_fails_the_turn_with_upstream_unavailable(client_with):
    async with client_with([{"sim_fault_refuse_rate": 1.0}, {"sim_fault_refuse_rate": 1.0}]) as (client, _):
        alice = await sign_up(client)
        conversation = await new_conversation(client, alice)
        events = await read_stream(
            client,
            "POST",
            f"/v1/conversations/{conversation}/messages",
            json={"content": "anyone?", "stream": True},
            headers=alice.headers,
        )
        log = events[1:]
        check_log(log)
        assert log[-1].name == "error"
        assert log[-1].data["code"] == "upstream_unavailable" and log[-1].data["retry_after_s"] > 0
        answer = events[0].data["assistant_message"]["id"]
        failed = (await client.get(f"/v1/messages/{answer}", headers=alice.headers)).json()
        assert failed["status"] == "failed" and failed["finish_reason"] == "error"
        assert failed["error"]["code"] == "upstream_unavailable"
        # The user's message is kept.
        tree = (await client.get(f"/v1/conversations/{conversation}/messages", headers=alice.headers)).json()[
            "data"
        ]
        assert [m["role"] for m in tree] == ["user", "assistant"]


async def test_a_worker_dying_mid_stream_ends_the_turn_with_error_and_keeps_its_text(client_with):
    async with client_with([{"sim_fault_die_after_tokens": 40}]) as (client, _):
        alice = await sign_up(client)
        conversation = await new_conversation(client, alice)
        events = await read_stream(
            client,
            "POST",
            f"/v1/conversations/{conversation}/messages",
            json={"content": "go on", "thinking": True, "stream": True},
            headers=alice.headers,
        )
        log = events[1:]
        check_log(log)
        assert log[-1].name == "error" and log[-1].data["code"] == "upstream_error"
        answer = events[0].data["assistant_message"]["id"]
        failed = await wait_finished(client, answer, alice.headers)
        assert failed["status"] == "failed"
        assert failed["reasoning"] == concatenated(log, "reasoning") and failed["reasoning"]
        assert failed["content"] == concatenated(log, "content")


async def test_a_stalled_worker_is_abandoned_for_another(client_with):
    # Round robin starts with the stalling worker, so that the turn certainly meets it first.
    workers = [{"sim_fault_stall_s": 30.0}, {}]
    environ = {"SURGE_FIRST_TOKEN_TIMEOUT_S": "1", "SURGE_ROUTING_POLICY": "round_robin"}
    async with client_with(workers, **environ) as (client, sims):
        stalling, healthy = (sim.app.server.scheduler for sim in sims)
        alice = await sign_up(client)
        conversation = await new_conversation(client, alice)
        before = await scrape(client)
        turn = (
            await client.post(
                f"/v1/conversations/{conversation}/messages", json={"content": "hi"}, headers=alice.headers
            )
        ).json()
        finished = await wait_finished(client, turn["assistant_message"]["id"], alice.headers)
        assert finished["status"] == "complete" and finished["content"]
        assert healthy.snapshot()["requests_finished"] == 1
        # The stalled request was given up (and so aborted upstream) without a token.
        await until(lambda: stalling.snapshot()["requests_aborted"] == 1, what="the stalled request aborted")
        assert stalling.snapshot()["generation_tokens"] == 0
        after = await scrape(client)
        assert after.added(before, "surge_upstream_retries_total", model=MODEL_ID) == 1
