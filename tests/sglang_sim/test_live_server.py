"""Behaviour that needs a real socket: client disconnects, dropped connections, the in-process runner."""

from __future__ import annotations

import time

import httpx
import pytest

from loadtests.sglang_sim import SimConfig, run_in_process
from tests.polling import until
from tests.sglang_sim.conftest import chat_body

LONG_CHAT = chat_body("go on", stream=True, max_tokens=100000, ignore_eos=True, rid="leaver")


async def test_client_disconnect_aborts_the_request_after_the_delay():
    config = SimConfig(sim_speedup=20.0, sim_abort_delay_s=10.0)  # 10 virtual s = 0.5 real s
    async with run_in_process(config) as sim, httpx.AsyncClient(timeout=10) as client:
        sched = sim.app.server.scheduler if sim.app else None
        assert sched is not None
        async with client.stream("POST", sim.url + "/v1/chat/completions", json=LONG_CHAT) as r:
            async for _ in r.aiter_lines():
                break  # first chunk arrived; now hang up
        hung_up = time.monotonic()
        await until(lambda: "leaver" not in sched.by_rid, what="the request aborted")
        # The server notices the hang-up after it happened, and waits the delay from then: never sooner.
        assert time.monotonic() - hung_up >= 0.5
        assert sched.stats.num_aborted == 1
        assert sched.used_tokens == 0


async def test_die_mid_stream_drops_the_connection_after_n_tokens():
    async with run_in_process(SimConfig(sim_speedup=200.0)) as sim, httpx.AsyncClient(timeout=10) as client:
        await client.post(sim.url + "/sim/faults", json={"die_after_tokens": 5})
        body = {"text": "x", "stream": True, "sampling_params": {"max_new_tokens": 50}}
        received: list[str] = []

        async def read_all() -> None:
            async with client.stream("POST", sim.url + "/generate", json=body) as r:
                received.extend([line async for line in r.aiter_lines()])

        with pytest.raises(httpx.RemoteProtocolError):
            await read_all()
        assert "[DONE]" not in "".join(received)
        assert (await client.get(sim.url + "/health")).status_code == 200  # the server itself lives on
