"""Fixtures shared by the whole suite: a fresh migrated database per test, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from litestar import Litestar
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from backend.app import create_app
from backend.db import models as m
from backend.db.engine import create_engine, session_factory
from backend.db.migrate import upgrade
from backend.settings import Settings, load_settings
from loadtests.sglang_sim import SimConfig, free_port, run_subprocess
from tests.services import (
    execute_admin,
    postgres_available,
    require,
    sqlalchemy_url,
    unique_name,
)

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
MODEL_ID = "deepseek-v3.1"
# Answers stay realistic in shape but bounded in length, so that a test's turn takes about a second.
TEST_MAX_OUTPUT_TOKENS = 3000


def sim_config(**overrides: Any) -> SimConfig:
    """A simulated worker serving the test model like `make run`'s, a hundred times faster than life."""
    base: dict[str, Any] = {
        "port": 0,
        "served_model_name": MODEL_ID,
        "chat_template": "deepseek-v3.1",
        "reasoning_parser": "deepseek-r1",
        "enable_metrics": True,
        "enable_cache_report": True,
        "sim_speedup": 100.0,
    }
    base.update(overrides)
    return SimConfig(**base)


def models_json(workers: list[str], **overrides: Any) -> str:
    spec = {
        "id": MODEL_ID,
        "display_name": "DeepSeek V3.1 (simulated)",
        "workers": workers,
        "thinking": "optional",
        "thinking_switch": "thinking",
        "max_output_tokens": TEST_MAX_OUTPUT_TOKENS,
    }
    spec.update(overrides)
    return json.dumps([spec])


@pytest.fixture(scope="session")
def fleet() -> Iterator[list[str]]:
    """Two simulated SGLang workers shared by the tests of one test process."""
    with run_subprocess(sim_config()) as first, run_subprocess(sim_config()) as second:
        yield [first.url, second.url]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per test process; each test gets a copy (much faster than migrating)."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    """A migrated template database per test process; CREATE DATABASE ... TEMPLATE copies it in ~50 ms."""
    if not postgres_available():
        yield None
        return
    # Unique per run: test suites of other worktrees may share this PostgreSQL server at the same time.
    name = unique_name(f"surge_template_{WORKER}")
    asyncio.run(execute_admin(f'CREATE DATABASE "{name}"'))
    upgrade(sqlalchemy_url(name))
    yield name
    asyncio.run(execute_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, postgres_template: str | None
) -> Iterator[str]:
    """A fresh, migrated database of the parametrised kind, dropped after the test."""
    if request.param == "sqlite":
        path = tmp_path / "surge.sqlite3"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    require("PostgreSQL", postgres_template is not None)
    name = unique_name("surge_test")
    asyncio.run(execute_admin(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"'))
    try:
        yield sqlalchemy_url(name)
    finally:
        asyncio.run(execute_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def make_settings(
    database_url: str, tmp_path: Path, *, workers: list[str] | None = None, **environ: str
) -> Settings:
    """Laptop settings on ``database_url`` and ``workers``, with cheap password hashing so tests stay fast."""
    base = {
        "SURGE_MODELS": models_json(workers or ["http://127.0.0.1:9"]),
        "SURGE_AUTO_TITLES": "false",
        "SURGE_SHUTDOWN_GRACE_S": "0.5",
        "SURGE_ENV": "test",
        "SURGE_DATABASE_URL": database_url,
        "SURGE_DATA_DIR": str(tmp_path),
        "SURGE_DATABASE_AUTO_MIGRATE": "false",
        "SURGE_ARGON2_TIME_COST": "1",
        "SURGE_ARGON2_MEMORY_KIB": "64",
        "SURGE_LOG_JSON": "false",
        "SURGE_LOG_LEVEL": "WARNING",
        # Push tests run their own dispatchers; API tests do not need one polling in the background.
        "SURGE_PUSH_DISPATCHER_ENABLED": "false",
    }
    base.update(environ)
    return load_settings(base)


@pytest.fixture
def settings(database_url: str, tmp_path: Path, fleet: list[str]) -> Settings:
    return make_settings(database_url, tmp_path, workers=fleet)


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test's own engine, for reaching past the API to the service layer.

    (The app's engine belongs to the event loop the test client runs it in.)"""
    engine = create_engine(settings)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind a real uvicorn on a free port, and a client for it.

    Not Litestar's test client: it runs each request to completion before returning, so streams would
    not stream, hanging up would not hang up, and anything the test runs concurrently would stall.
    """
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_config=None))
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the app did not start")
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app) as http:
        yield http


@dataclass
class Account:
    """A signed-up user as a test sees it."""

    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


_counter = iter(range(1_000_000))


async def sign_up(
    client: httpx.AsyncClient, email: str | None = None, password: str = "correct horse"
) -> Account:
    email = email or f"user{next(_counter)}@example.com"
    response = await client.post("/v1/auth/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(body["user"]["id"], email, password, body["access_token"], body["refresh_token"])


async def set_tier(database_url: str, account: Account, tier: str) -> None:
    """Put ``account`` on ``tier`` (there is no API for tiers: an operator sets them in the database)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(m.User).where(m.User.id == uuid.UUID(account.id)).values(tier=tier)
            )
    finally:
        await engine.dispose()


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> Account:
    return await sign_up(client, "alice@example.com")


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> Account:
    return await sign_up(client, "bob@example.com")


def error_of(response: Any) -> dict[str, Any]:
    """The ``error`` object of an error response, checked against API.md's envelope."""
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["request_id"]
    return error


def decode(response: Any, type_: Any) -> Any:
    return msgspec.json.decode(response.content, type=type_)
