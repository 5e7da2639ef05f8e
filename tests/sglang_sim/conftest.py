"""Fixtures for the simulator's tests: an app per test, reached through httpx's ASGI transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from loadtests.sglang_sim import SimApp, SimConfig, build_app

FAST = 2000.0  # virtual seconds per real second in tests: a 30 ms decode step takes 15 µs


def sse_events(text: str) -> list[Any]:
    """The `data:` payloads of an event stream, JSON-decoded ("[DONE]" kept as a string)."""
    events: list[Any] = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: ") :]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


SimFactory = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, SimApp]]]


@pytest.fixture
def sim() -> SimFactory:
    """`async with sim(enable_metrics=True) as (client, app):` — a fresh simulator per block."""

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, SimApp]]:
        config = SimConfig(**{"sim_speedup": FAST, **overrides})
        app = build_app(config)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim", timeout=30) as client:
            try:
                yield client, app
            finally:
                await app.server.shutdown()

    return factory


def chat_body(*contents: str, **extra: Any) -> dict[str, Any]:
    """A chat request whose messages alternate user/assistant, starting with a user message."""
    roles = ["user", "assistant"]
    messages = [{"role": roles[i % 2], "content": c} for i, c in enumerate(contents)]
    return {"model": "sim", "messages": messages, **extra}
