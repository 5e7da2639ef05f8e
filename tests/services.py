"""The real services tests may need (PostgreSQL, Redis): where they are, and whether a missing one
skips the test (a laptop) or fails it (CI sets SURGE_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import asyncio
import os
import uuid
from functools import cache

import asyncpg
import pytest
import redis

POSTGRES_URL = os.environ.get("SURGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SURGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("SURGE_REQUIRE_SERVICES", "") not in ("", "0", "false")


def sqlalchemy_url(database: str) -> str:
    """The asyncpg SQLAlchemy URL of ``database`` on the test server."""
    base, _, _ = POSTGRES_URL.rpartition("/")
    return base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + database


def admin_dsn() -> str:
    return POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://", 1)


@cache
def postgres_available() -> bool:
    async def probe() -> None:
        connection = await asyncpg.connect(admin_dsn(), timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


@cache
def redis_available() -> bool:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:
        return False
    return True


def require(service: str, available: bool) -> None:
    """Skip without the service, unless CI said it must be there: then its absence is a failure."""
    if available:
        return
    message = f"{service} is not reachable"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, and SURGE_REQUIRE_SERVICES=1 says it must be", pytrace=False)
    pytest.skip(message)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def execute_admin(*statements: str) -> None:
    connection = await asyncpg.connect(admin_dsn())
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()
