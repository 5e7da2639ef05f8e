"""Surge's database as the load tests see it: made with the product's own CLI, read with SQL of their own.

A benchmark or an audit checks the server from the outside, as an operator would. It creates a database
and brings it to the newest schema with ``python -m backend.cli migrate`` (what a deployment runs), and
reads back what happened with plain SQL over ``sqlite3`` or ``asyncpg``, written against the tables and
columns of the schema, never with the backend's ORM models or settings. The values come back as the
driver gives them; ``as_uuid`` and ``as_datetime`` make SQLite's (16-byte ids, naive UTC text) and
PostgreSQL's (uuid, timestamptz) alike.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_DSN = os.environ.get("SURGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def migrate(database_url: str) -> None:
    """Bring the database at ``database_url`` (a SQLAlchemy URL, as ``SURGE_DATABASE_URL`` takes it) to
    the newest schema with ``python -m backend.cli migrate``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "backend.cli", "migrate", cwd=ROOT,
        env={**os.environ, "SURGE_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"surge migrate exited with {process.returncode}: {output.decode()[-2000:]}")


def postgres_url(name: str, server: str = POSTGRES_DSN) -> str:
    """The SQLAlchemy URL (what ``SURGE_DATABASE_URL`` takes) of database ``name`` on ``server`` (a libpq
    URL; the test server by default)."""
    return server.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"


async def create_postgres(prefix: str, server: str = POSTGRES_DSN) -> str:
    """A new, empty PostgreSQL database named ``<prefix>_<random>`` on ``server``; its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(server)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return name


async def drop_postgres(name: str, server: str = POSTGRES_DSN) -> None:
    connection = await asyncpg.connect(server)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@asynccontextmanager
async def fresh_postgres(prefix: str) -> AsyncIterator[str]:
    """A migrated PostgreSQL database for one run (its SQLAlchemy URL), dropped afterwards."""
    name = await create_postgres(prefix)
    try:
        url = postgres_url(name)
        await migrate(url)
        yield url
    finally:
        await drop_postgres(name)


def driver_dsn(database_url: str) -> str:
    """What asyncpg or sqlite3 connects to, from a SQLAlchemy URL."""
    if database_url.startswith("sqlite"):
        return database_url.split(":///", 1)[1]
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def fetch(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of one query (without parameters) on a SQLite or PostgreSQL database."""
    dsn = driver_dsn(database_url)
    if database_url.startswith("sqlite"):

        def query() -> list[tuple[Any, ...]]:
            # mode=rw: a wrong path fails instead of reading a new, empty database.
            with sqlite3.connect(f"file:{dsn}?mode=rw", uri=True) as connection:
                return connection.execute(sql).fetchall()

        return await asyncio.to_thread(query)
    connection = await asyncpg.connect(dsn)
    try:
        return [tuple(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


def as_uuid(value: object) -> uuid.UUID | None:
    """An id column's value: 16 bytes on SQLite, a uuid on PostgreSQL."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return uuid.UUID(bytes=value)
    return uuid.UUID(str(value))


def as_datetime(value: object) -> datetime | None:
    """A timestamp column's value, timezone-aware: naive UTC text on SQLite, timestamptz on PostgreSQL."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
