"""The load tests' own reading of Surge's database: values made alike across SQLite and PostgreSQL, and a
path that does not exist is an error, not an empty database."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from loadtests.database import as_datetime, as_uuid, driver_dsn, fetch, postgres_url


def test_ids_come_back_as_uuids_from_16_bytes_or_text():
    value = uuid.uuid4()
    assert as_uuid(value.bytes) == value  # SQLite
    assert as_uuid(str(value)) == value and as_uuid(value) == value  # PostgreSQL
    assert as_uuid(None) is None


def test_timestamps_come_back_timezone_aware_in_utc():
    naive_text = "2025-01-27 09:00:00.250000"  # SQLite keeps UTC without an offset
    assert as_datetime(naive_text) == datetime(2025, 1, 27, 9, 0, 0, 250000, tzinfo=UTC)
    paris = datetime(2025, 1, 27, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    assert as_datetime(paris) == paris and as_datetime(paris).utcoffset() == timedelta(hours=1)
    assert as_datetime(None) is None


def test_urls_become_what_the_drivers_take():
    assert driver_dsn("sqlite+aiosqlite:////tmp/x/surge.sqlite3") == "/tmp/x/surge.sqlite3"
    assert postgres_url("bench").startswith("postgresql+asyncpg://") and postgres_url("bench").endswith(
        "/bench"
    )
    assert driver_dsn(postgres_url("bench")).startswith("postgresql://")


def test_fetch_reads_sqlite_and_refuses_a_database_that_is_not_there(tmp_path):
    path = tmp_path / "surge.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE message (id BLOB, status TEXT)")
        connection.execute("INSERT INTO message VALUES (?, 'complete')", (uuid.UUID(int=7).bytes,))
    rows = asyncio.run(fetch(f"sqlite+aiosqlite:///{path}", "SELECT id, status FROM message"))
    assert [(as_uuid(i), status) for i, status in rows] == [(uuid.UUID(int=7), "complete")]
    with pytest.raises(sqlite3.OperationalError):
        asyncio.run(fetch(f"sqlite+aiosqlite:///{tmp_path / 'missing.sqlite3'}", "SELECT 1"))
    assert not (tmp_path / "missing.sqlite3").exists()
