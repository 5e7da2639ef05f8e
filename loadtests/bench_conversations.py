"""Latency of ``GET /v1/conversations`` for a user with 1,000 conversations, on PostgreSQL.

Starts ``surge serve`` on a fresh database, seeds the conversations through the database, then times
sequential requests (first page, a deep page through the cursor, and a search) from one client.

    uv run python -m loadtests.bench_conversations [--conversations 1000] [--requests 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from backend.db.migrate import upgrade

ADMIN_DSN = os.environ.get("SURGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


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


async def measure(base_url: str, headers: dict[str, str], path: str, requests: int) -> list[float]:
    samples = []
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
        for _ in range(20):  # warm-up: connection pool, prepared statements
            (await client.get(path)).raise_for_status()
        for _ in range(requests):
            started = time.perf_counter()
            response = await client.get(path)
            samples.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return samples


async def run(args: argparse.Namespace) -> dict[str, object]:
    database = f"surge_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    base_dsn = ADMIN_DSN.rsplit("/", 1)[0]
    url = f"{base_dsn.replace('postgresql://', 'postgresql+asyncpg://')}/{database}"
    port = args.port
    server = None
    try:
        await asyncio.to_thread(upgrade, url)
        env = {**os.environ, "SURGE_DATABASE_URL": url, "SURGE_PORT": str(port), "SURGE_LOG_LEVEL": "WARNING"}
        server = await asyncio.create_subprocess_exec(sys.executable, "-m", "backend.cli", "serve", env=env)
        base_url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base_url) as client:
            for _ in range(100):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            session = (
                await client.post(
                    "/v1/auth/signup", json={"email": "bench@example.com", "password": "benchmark"}
                )
            ).json()
        await seed(f"{base_dsn}/{database}", uuid.UUID(session["user"]["id"]), args.conversations)
        headers = {"Authorization": f"Bearer {session['access_token']}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
            cursor = None
            for _ in range(25):  # walk 25 pages deep (500 conversations) to time a deep cursor
                page = (
                    await client.get("/v1/conversations", params={"cursor": cursor} if cursor else None)
                ).json()
                cursor = page["next_cursor"]
        results: dict[str, object] = {"conversations": args.conversations, "requests": args.requests}
        for name, path in {
            "first page (limit 20)": "/v1/conversations",
            "page 26 via cursor": f"/v1/conversations?cursor={cursor}",
            "search q=topic 42": "/v1/conversations?q=topic%2042",
        }.items():
            samples = await measure(base_url, headers, path, args.requests)
            results[name] = {
                "p50_ms": round(statistics.median(samples), 2),
                "p95_ms": round(percentile(samples, 0.95), 2),
                "p99_ms": round(percentile(samples, 0.99), 2),
            }
        return results
    finally:
        if server is not None:
            server.terminate()
            await asyncio.wait_for(server.wait(), timeout=10)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


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
