"""The ``surge`` command: ``serve``, ``migrate``, ``downgrade``, ``settings``."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from backend.db.migrate import downgrade, upgrade
from backend.observability.logging import configure_logging
from backend.settings import Settings, load_settings, settings_table


def refuse_unsafe(settings: Settings, workers: int) -> None:
    problems = settings.configuration_problems() + settings.production_problems()
    if workers > 1 and not settings.redis.url:
        # Without Redis each process would keep its own event logs and limits: a stream resumed on
        # another process would find nothing. Refuse rather than be silently wrong.
        problems.append(
            f"{workers} backend processes need SURGE_REDIS_URL (event logs and rate limits must be shared)"
        )
    if problems:
        sys.exit("Surge cannot start:\n  - " + "\n  - ".join(problems))


def serve(settings: Settings, args: argparse.Namespace) -> None:
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    workers = args.workers or settings.server.workers
    refuse_unsafe(settings, workers)
    configure_logging(settings.server.log_level, json_lines=settings.server.log_json)
    if settings.database.auto_migrate:
        upgrade(settings.database_url)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    mode = ("SQLite" if settings.is_sqlite else "PostgreSQL") + (
        ", Redis" if settings.redis.url else ", in-process event log: one process only"
    )
    print(f"Surge ({mode}) on http://{shown}:{port}")
    if settings.server.web_enabled:
        print(f"  Web app: http://{shown}:{port}/")
    print(f"  API docs: http://{shown}:{port}/docs", flush=True)
    uvicorn.run(
        "backend.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=False,
        # WebSocket frames are capped like request bodies (uvicorn would take 16 MiB): it closes 1009.
        ws_max_size=settings.server.max_body_bytes,
        # Streams end with their turn; give them time to finish on a rolling restart.
        timeout_graceful_shutdown=int(settings.server.shutdown_grace_s),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="surge", description="Surge: a backend for AI chat apps on SGLang")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the HTTP API (SURGE_* settings apply)")
    serve_parser.add_argument("--host")
    serve_parser.add_argument("--port", type=int)
    serve_parser.add_argument("--workers", type=int)
    migrate_parser = commands.add_parser("migrate", help="apply database migrations")
    migrate_parser.add_argument("--revision", default="head")
    downgrade_parser = commands.add_parser("downgrade", help="revert database migrations")
    downgrade_parser.add_argument("--revision", default="-1")
    commands.add_parser("settings", help="print every setting as a Markdown table")
    args = parser.parse_args(argv)

    settings = load_settings()
    if args.command == "serve":
        serve(settings, args)
    elif args.command == "migrate":
        upgrade(settings.database_url, args.revision)
    elif args.command == "downgrade":
        downgrade(settings.database_url, args.revision)
    elif args.command == "settings":
        print(settings_table())


if __name__ == "__main__":
    main()
