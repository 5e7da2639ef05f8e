"""Fixtures of the SDK tests: a live Surge on a free port, and mock transports for the edge cases."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import msgspec
import pytest
import uvicorn
from surge import _retry

from backend.app import create_app
from backend.settings import Settings


@dataclass
class LiveSurge:
    """A real Surge (uvicorn, in this process) that the SDK reaches over TCP like any app would."""

    url: str
    settings: Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serve_live(settings: Settings) -> Iterator[LiveSurge]:
    """Surge on ``settings``, served by uvicorn on a thread of its own, so that sync and async clients, SSE
    and WebSockets all go through real sockets."""
    port = _free_port()
    if not settings.server.public_url:
        # Where clients reach it, as an operator would set it: share links lead back here.
        server_settings = msgspec.structs.replace(settings.server, public_url=f"http://127.0.0.1:{port}")
        settings = msgspec.structs.replace(settings, server=server_settings)
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-surge", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live Surge did not start")
        time.sleep(0.01)
    try:
        yield LiveSurge(url=f"http://127.0.0.1:{port}", settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def live_surge(settings: Settings) -> Iterator[LiveSurge]:
    """Surge on the test's fresh database (SQLite, and PostgreSQL when it is there)."""
    with serve_live(settings) as live:
        yield live


@dataclass
class Sleeps:
    """The waits the SDK asked for, instead of waiting."""

    seconds: list[float]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    """Make every retry and reconnection wait instant, and record how long it would have been."""
    recorded = Sleeps([])

    def sleep(seconds: float) -> None:
        recorded.seconds.append(seconds)

    async def async_sleep(seconds: float) -> None:
        recorded.seconds.append(seconds)

    monkeypatch.setattr(_retry, "sleep", sleep)
    monkeypatch.setattr(_retry, "async_sleep", async_sleep)
    return recorded
