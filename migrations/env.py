"""Alembic environment: runs migrations on the async engine of SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from backend.db.engine import create_engine
from backend.db.migrate import migration_options
from backend.settings import load_settings

config = context.config


def run_with(connection: Connection) -> None:
    context.configure(connection=connection, **migration_options(connection))
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    settings = load_settings()
    engine = create_engine(settings, url=config.attributes.get("database_url") or settings.database_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(run_async())
