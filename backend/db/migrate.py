"""Apply, inspect and compare Alembic migrations from code (``surge migrate``, start-up, tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advanced_alchemy.types import GUID
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from backend.db import models  # noqa: F401  (registers every table on the metadata)
from backend.db.base import metadata

ROOT = Path(__file__).resolve().parents[2]


def compare_type(
    context: MigrationContext,
    _inspected_column: Any,
    _metadata_column: Any,
    _inspected: Any,
    metadata_type: Any,
) -> bool | None:
    """SQLite reflects Advanced Alchemy's 16-byte GUID as NUMERIC(16): the same column, not drift."""
    if context.dialect.name == "sqlite" and isinstance(metadata_type, GUID):
        return False
    return None


def migration_options(connection: Connection) -> dict[str, Any]:
    """The options env.py and the drift check share, so that both see the schema the same way."""
    dialect = connection.dialect.name

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return not (type_ == "index" and obj.info.get("postgresql_only") and dialect != "postgresql")

    return {
        "target_metadata": metadata,
        "include_object": include,
        "compare_type": compare_type,
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        "render_as_batch": dialect == "sqlite",
    }


def schema_drift(connection: Connection) -> list[Any]:
    """Differences between the models and the migrated database; empty when they agree."""
    options = migration_options(connection)
    context = MigrationContext.configure(
        connection,
        opts={key: options[key] for key in ("include_object", "compare_type")},
    )
    return list(compare_metadata(context, metadata))


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to ``revision``; synchronous, so call it before the event loop or in a thread."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
