"""The real sglang-router (PyPI, Rust) in front of two simulators, streamed and not."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from loadtests.sglang_sim import SimConfig, free_port, run_subprocess
from tests.sglang_sim.conftest import chat_body, sse_events

# One router for the module: keep its tests on one xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sglang-router")]


@pytest.fixture(scope="module")
def router_url() -> Iterator[str]:
    config = SimConfig(port=0, sim_speedup=50.0, reasoning_parser="deepseek-r1", enable_cache_report=True)
    with run_subprocess(config) as a, run_subprocess(config) as b:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "sglang_router.launch_router", "--worker-urls", a.url, b.url,
             "--policy", "cache_aware", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warn",
             # Its Prometheus exporter would take port 29000: a second router on the machine then exits.
             "--prometheus-port", str(free_port())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90  # a busy 2-core CI machine starts it slowly
            while True:
                assert proc.poll() is None, "router exited"
                try:
                    if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "router did not come up"
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def test_chat_through_the_router(router_url):
    r = httpx.post(
        router_url + "/v1/chat/completions", json=chat_body("via router", max_tokens=30), timeout=30
    )
    assert r.status_code == 200
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 30


def test_streamed_chat_through_the_router(router_url):
    body = chat_body("via router", stream=True, max_tokens=30, stream_options={"include_usage": True})
    r = httpx.post(router_url + "/v1/chat/completions", json=body, timeout=30)
    events = sse_events(r.text)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[-2]["choices"] == []
    assert events[-2]["usage"]["completion_tokens"] == 30
    assert events[-1] == "[DONE]"


def test_generate_through_the_router(router_url):
    payload = {"text": "router native", "sampling_params": {"max_new_tokens": 8}}
    r = httpx.post(router_url + "/generate", json=payload, timeout=30)
    assert r.status_code == 200
    assert len(r.json()["output_ids"]) == 8
    streamed = httpx.post(router_url + "/generate", json={**payload, "stream": True}, timeout=30)
    events = sse_events(streamed.text)
    assert events[-1] == "[DONE]"
    assert events[-2]["meta_info"]["finish_reason"] == {"type": "length", "length": 8}


def test_cache_aware_router_sends_a_conversation_back_to_the_worker_that_holds_it(router_url):
    first = chat_body("a long shared system of words " * 20, max_tokens=5)
    httpx.post(router_url + "/v1/chat/completions", json=first, timeout=30)
    again = httpx.post(router_url + "/v1/chat/completions", json=first, timeout=30).json()
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] == again["usage"]["prompt_tokens"] - 1
