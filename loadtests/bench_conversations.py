"""Latency of ``GET /v1/conversations`` for a user with 1,000 conversations, on PostgreSQL.

Starts ``surge serve`` on a fresh database (made with ``surge migrate``), seeds the conversations through
the database with SQL of its own, then times sequential requests (first page, a deep page through the
cursor, and a search) from one client: the SDK's ``AsyncSurge``, so a figure is what an app waits for,
decoding included (msgspec: microseconds for a page of 20).

    uv run python -m loadtests.bench_conversations [--conversations 1000] [--requests 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from surge import AsyncSurge

from loadtests.database import driver_dsn, fresh_postgres
from loadtests.surge_server import serve


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def seed(dsn: str, user_id: uuid.UUID, count: int) -> None:
    from uuid_utils.compat import uuid7

    connection = await asyncpg.connect(dsn)
    now = datetime.now(UTC)
    conversations = []
    messages = []
    for index in range(count):
        conversation_id = uuid7()
        at = now - timedelta(minutes=count - index)
        conversations.append(
            (conversation_id, user_id, f"Conversation {index}", "deepseek-v3.1", index % 50 == 0, at)
        )
        messages.extend(
            (uuid7(), conversation_id, role, f"message {index}-{role} about topic {index % 97}", at)
            for role in ("user", "assistant")
        )
    await connection.executemany(
        "INSERT INTO conversation (id, user_id, title, model, pinned, archived, activity_at, last_message_at,"
        " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, false, $6, $6, $6, $6)",
        conversations,
    )
    await connection.executemany(
        "INSERT INTO message (id, conversation_id, role, content, status, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, 'complete', $5, $5)",
        messages,
    )
    await connection.execute("ANALYZE")
    await connection.close()


async def measure(call: Callable[[], Awaitable[object]], requests: int) -> list[float]:
    samples = []
    for _ in range(20):  # warm-up: connection pool, prepared statements
        await call()
    for _ in range(requests):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def run(args: argparse.Namespace) -> dict[str, object]:
    async with (
        fresh_postgres("surge_bench") as url,
        serve({"SURGE_DATABASE_URL": url}, port=args.port, quiet=False) as surge,
        AsyncSurge(base_url=surge.url) as client,
    ):
        session = await client.auth.sign_up("bench@example.com", "benchmark")
        await seed(driver_dsn(url), uuid.UUID(session.user.id), args.conversations)
        deep = await client.conversations.list()
        for _ in range(24):  # walk to page 25 (500 conversations) to time a deep cursor: its next page
            deep = await deep.get_next_page()

        async def first_page() -> object:
            return await client.conversations.list()

        async def search() -> object:
            return await client.conversations.list(q="topic 42")

        results: dict[str, object] = {"conversations": args.conversations, "requests": args.requests}
        for name, call in {
            "first page (limit 20)": first_page,
            "page 26 via cursor": deep.get_next_page,
            "search q=topic 42": search,
        }.items():
            samples = await measure(call, args.requests)
            results[name] = {
                "p50_ms": round(statistics.median(samples), 2),
                "p95_ms": round(percentile(samples, 0.95), 2),
                "p99_ms": round(percentile(samples, 0.99), 2),
            }
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--json", type=Path, default=Path("results/bench_conversations.json"))
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print(f"GET /v1/conversations, {args.conversations} conversations, PostgreSQL,", end=" ")
    print(f"{args.requests} sequential requests")
    print(f"{'query':<24} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name, figures in results.items():
        if isinstance(figures, dict):
            print(f"{name:<24} {figures['p50_ms']:>8} {figures['p95_ms']:>8} {figures['p99_ms']:>8}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
