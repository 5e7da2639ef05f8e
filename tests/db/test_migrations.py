"""The migrations build the schema the models describe, on SQLite and PostgreSQL, and undo cleanly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.db.engine import create_engine
from backend.db.migrate import downgrade, schema_drift, upgrade
from backend.settings import load_settings
from tests.services import execute_admin, postgres_available, require, sqlalchemy_url, unique_name


async def drift(url: str) -> list[object]:
    engine = create_engine(load_settings({}), url=url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(schema_drift)
    finally:
        await engine.dispose()


async def table_names(url: str) -> set[str]:
    from sqlalchemy import inspect

    engine = create_engine(load_settings({}), url=url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


def check_round_trip(url: str) -> None:
    upgrade(url)
    assert asyncio.run(drift(url)) == []
    downgrade(url, "base")
    assert asyncio.run(table_names(url)) <= {"alembic_version"}
    upgrade(url)
    assert asyncio.run(drift(url)) == []


def test_sqlite_upgrade_downgrade_upgrade_without_drift(tmp_path: Path):
    check_round_trip(f"sqlite+aiosqlite:///{tmp_path / 'round-trip.sqlite3'}")


@pytest.mark.postgres
def test_postgresql_upgrade_downgrade_upgrade_without_drift():
    require("PostgreSQL", postgres_available())
    name = unique_name("surge_migrations")
    asyncio.run(execute_admin(f'CREATE DATABASE "{name}"'))
    try:
        check_round_trip(sqlalchemy_url(name))
    finally:
        asyncio.run(execute_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
