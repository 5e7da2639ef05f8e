"""The async engine and session factory for SQLite (embedded) or PostgreSQL, and their Litestar wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advanced_alchemy.extensions.litestar import AsyncSessionConfig, SQLAlchemyAsyncConfig
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from backend.observability import metrics
from backend.settings import Settings


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers proceed while a turn checkpoints; busy_timeout queues writers instead of failing
    # them; SQLite leaves foreign keys (and so every ON DELETE CASCADE) off unless asked.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _count_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    # The statement's verb only (SELECT, INSERT, ... BEGIN): cheap, and it never holds data.
    metrics.DB_STATEMENTS.labels(statement.lstrip()[:6].upper().rstrip()).inc()


def create_engine(settings: Settings, *, url: str | None = None) -> AsyncEngine:
    """An engine for the configured database, with SQLite's pragmas or PostgreSQL's pool sizes; every
    statement it runs is counted (``surge_db_statements_total``)."""
    url = url or settings.database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            echo=settings.database.echo,
            # A failed statement's error quotes its parameters: message text, push tokens. Not in logs.
            hide_parameters=True,
        )
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        event.listen(engine.sync_engine, "before_cursor_execute", _count_statement)
        return engine
    engine = create_async_engine(
        url,
        echo=settings.database.echo,
        hide_parameters=True,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
        # No ping at every checkout (a round trip each, several per turn): the first statement to meet a
        # broken connection (PostgreSQL restarted) fails, and SQLAlchemy then drops every connection made
        # before it, so the pool recovers at once. That statement's request is answered 503 with
        # Retry-After (backend.errors), a background loop retries at its next round.
        pool_recycle=1800,
    )
    event.listen(engine.sync_engine, "before_cursor_execute", _count_statement)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alchemy_config(engine: AsyncEngine) -> SQLAlchemyAsyncConfig:
    """Advanced Alchemy's config: a ``db_session`` dependency per request, closed after the response.

    Services commit explicitly: the autocommit hook commits while the response is already on its way
    and swallows a failed commit, which would acknowledge a write that never happened.
    """
    return SQLAlchemyAsyncConfig(
        engine_instance=engine,
        session_config=AsyncSessionConfig(expire_on_commit=False),
        create_all=False,
    )
