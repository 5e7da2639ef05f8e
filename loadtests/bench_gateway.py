"""Benchmark 2 of WORKLOAD.md, gateway overhead: what Surge adds between a phone and an SGLang worker.

The same streamed turns go (a) straight to a simulated worker and (b) through Surge (auth, database
writes, event log, SSE). Reported, for SQLite and for PostgreSQL + Redis:

- added time to first token, p50/p99 (Surge's TTFT minus the worker's, measured side by side);
- CPU seconds of the Surge process per 1,000 relayed tokens;
- the most concurrent open streams one backend process holds with p99 added TTFT under 50 ms;
- memory per open stream (growth of the process's resident memory over the streams held).

The worker runs in real time (``--sim-speedup 1``) and streams every token (``--stream-interval 1``),
as SGLang does by default, so the relay work per stream is what production sees.

Turns through Surge go through the SDK (``AsyncSurge``: sign-up, ``messages.stream`` with its typed
events, ``messages.cancel``), so the client side of "through Surge" is what an app runs; the worker is
read with the SDK's event-stream decoder (``surge.aiter_sse``). Surge runs from its CLI on a database
made with ``surge migrate``; nothing of the backend is imported.

    uv run python -m loadtests.bench_gateway [--levels 25 50 100 200] [--backends sqlite postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from surge import AsyncSurge, ContentEvent, DoneEvent, ReasoningEvent, SurgeError, aiter_sse

from loadtests.benchenv import UNLIMITED_USER
from loadtests.database import fresh_postgres, migrate
from loadtests.sglang_sim import SimConfig, free_port, start_subprocess, stop_subprocess
from loadtests.sglang_sim.textgen import sample_text
from loadtests.surge_server import serve

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("SURGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MODEL = "deepseek-v3.1"
TTFT_BUDGET_MS = 50.0
STREAM_TIMEOUT = httpx.Timeout(600, connect=30)
# What both paths send as the system prompt (Surge's is set to it): as long as Surge's default, 48 tokens.
SYSTEM_PROMPT = sample_text(1, 48)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Backend:
    name: str
    url: str
    pid: int
    users: list[AsyncSurge] = field(default_factory=list)  # one signed-in client each, one shared pool
    conversations: list[str] = field(default_factory=list)


# --- one turn, two ways ---
async def direct_ttft(http: httpx.AsyncClient, worker: str, question: str, max_tokens: int) -> float:
    """Seconds to the first token straight from the worker, with the prompt Surge would send."""
    body = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": question},
        ],
        "stream": True,
        "max_tokens": max_tokens,
        "chat_template_kwargs": {"thinking": False},
        "separate_reasoning": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first = None
    async with http.stream("POST", f"{worker}/v1/chat/completions", json=body) as response:
        async for event in aiter_sse(response):
            if first is not None or event.data == "[DONE]":
                continue  # read to the end, as Surge does
            for choice in json.loads(event.data).get("choices", []):
                delta = choice.get("delta") or {}
                if delta.get("content") or delta.get("reasoning_content"):  # not the empty role chunk
                    first = time.perf_counter() - started
    return first if first is not None else float("nan")


async def surge_turn(
    backend: Backend,
    index: int,
    question: str,
    *,
    thinking: bool = False,
    stop_after_first_token: bool = False,
) -> tuple[float, int]:
    """Seconds to the first token through Surge, and the tokens relayed: the answer's completion tokens
    from its ``done`` event (a streamed event carries as many tokens as the worker sent in one chunk).

    Each turn starts a new root (``parent_id=None``): the users' conversations carry many turns at once,
    and the prompt stays the system prompt and the question, as on the direct path."""
    client = backend.users[index % len(backend.users)]
    conversation = backend.conversations[index % len(backend.conversations)]
    started = time.perf_counter()
    first, tokens = None, 0
    stream = client.messages.stream(conversation, question, thinking=thinking, parent_id=None)
    async with stream:
        async for event in stream:
            if isinstance(event, ReasoningEvent | ContentEvent) and first is None:
                first = time.perf_counter() - started
                if stop_after_first_token:
                    break
            elif isinstance(event, DoneEvent) and event.message.usage is not None:
                tokens = event.message.usage.completion_tokens
    if stop_after_first_token and stream.message_id is not None:
        # Only the first token was wanted: stop the answer rather than load the worker with it.
        await client.messages.cancel(stream.message_id)
    return (first if first is not None else float("nan")), tokens


# --- processes ---
@contextlib.contextmanager
def worker(max_tokens_pool: int) -> Iterator[str]:
    config = SimConfig(
        port=free_port(),
        served_model_name=MODEL,
        chat_template="deepseek-v3.1",
        reasoning_parser="deepseek-r1",
        enable_cache_report=True,
        sim_speedup=1.0,
        stream_interval=1,
        max_running_requests=4096,
        max_total_tokens=max_tokens_pool,
    )
    proc, url = start_subprocess(config)
    try:
        yield url
    finally:
        stop_subprocess(proc)


@contextlib.asynccontextmanager
async def database(kind: str) -> AsyncIterator[dict[str, str]]:
    """The environment of a fresh database (and Redis) for one backend run."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite+aiosqlite:///{directory}/bench.sqlite3"
            await migrate(url)
            yield {"SURGE_DATABASE_URL": url, "SURGE_DATA_DIR": directory}
        return
    async with fresh_postgres("surge_gateway") as url:
        yield {"SURGE_DATABASE_URL": url, "SURGE_REDIS_URL": REDIS_URL}


@contextlib.asynccontextmanager
async def surge(
    kind: str, worker_url: str, users: int, http: httpx.AsyncClient, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Backend]:
    """Surge on a fresh database, with ``users`` signed-up clients (each with a conversation) that share
    the connection pool ``http``."""
    async with database(kind) as env_db:
        env = {
            **env_db,
            **UNLIMITED_USER,
            "SURGE_SYSTEM_PROMPT": SYSTEM_PROMPT,
            "SURGE_MODELS": json.dumps(
                [{"id": MODEL, "display_name": "bench", "workers": [worker_url], "max_output_tokens": 32768}]
            ),
            **(extra_env or {}),
        }
        async with serve(env) as process:
            backend = Backend(kind, process.url, process.pid)
            for index in range(users):
                client = AsyncSurge(base_url=process.url, http_client=http, timeout=STREAM_TIMEOUT)
                await client.auth.sign_up(
                    f"bench{index}-{uuid.uuid4().hex[:6]}@example.com", "benchmark-password"
                )
                backend.users.append(client)
                backend.conversations.append((await client.conversations.create()).id)
            yield backend


# --- the three measurements ---
async def added_ttft(
    http: httpx.AsyncClient, backend: Backend, worker_url: str, pairs: int
) -> dict[str, float]:
    """Turns sent both ways, alternating, a few at a time: TTFT p50/p99 of each and the difference."""
    direct: list[float] = []
    through: list[float] = []
    slots = asyncio.Semaphore(4)

    async def pair(index: int) -> None:
        question = f"Question {index}: {uuid.uuid4().hex} what is the capital of France?"
        async with slots:
            direct.append(await direct_ttft(http, worker_url, question + " (direct)", 64))
            through.append((await surge_turn(backend, index, question, stop_after_first_token=True))[0])

    await asyncio.gather(*(pair(index) for index in range(pairs)))
    return summarise(direct, through)


def summarise(direct: list[float], through: list[float]) -> dict[str, float]:
    direct_ms = [value * 1000 for value in direct if value == value]
    through_ms = [value * 1000 for value in through if value == value]
    return {
        "direct_p50_ms": round(percentile(direct_ms, 0.5), 1),
        "direct_p99_ms": round(percentile(direct_ms, 0.99), 1),
        "surge_p50_ms": round(percentile(through_ms, 0.5), 1),
        "surge_p99_ms": round(percentile(through_ms, 0.99), 1),
        "added_p50_ms": round(percentile(through_ms, 0.5) - percentile(direct_ms, 0.5), 1),
        "added_p99_ms": round(percentile(through_ms, 0.99) - percentile(direct_ms, 0.99), 1),
    }


async def cpu_per_1000_tokens(backend: Backend, turns: int) -> dict[str, float]:
    slots = asyncio.Semaphore(16)
    tokens = 0
    cpu_before = process_cpu_s(backend.pid)

    async def one(index: int) -> None:
        nonlocal tokens
        async with slots:
            tokens += (await surge_turn(backend, index, f"Explain item {index} {uuid.uuid4().hex}"))[1]

    await asyncio.gather(*(one(index) for index in range(turns)))
    cpu = process_cpu_s(backend.pid) - cpu_before
    return {
        "relayed_tokens": tokens,
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1000_tokens": round(cpu / tokens * 1000, 3),
    }


async def hold_streams(
    http: httpx.AsyncClient, backend: Backend, worker_url: str, level: int, probes: int
) -> dict[str, float]:
    """Keep ``level`` long streams open through Surge and measure probe turns both ways meanwhile."""
    stop = asyncio.Event()
    opened = asyncio.Semaphore(0)

    async def background(index: int) -> None:
        while not stop.is_set():
            with contextlib.suppress(SurgeError):
                task = asyncio.create_task(
                    surge_turn(
                        backend,
                        10_000 + index,
                        f"Think at length about {uuid.uuid4().hex}",
                        thinking=True,
                    )
                )
                opened.release()
                await task

    rss_before = process_rss_mb(backend.pid)
    holders = [asyncio.create_task(background(index)) for index in range(level)]
    for _ in range(level):
        await opened.acquire()
    await asyncio.sleep(3.0)  # let every stream reach its steady state
    rss_held = process_rss_mb(backend.pid)
    direct: list[float] = []
    through: list[float] = []
    for index in range(probes):
        question = f"Probe {index} {uuid.uuid4().hex}"
        direct.append(await direct_ttft(http, worker_url, question + " (direct)", 16))
        through.append((await surge_turn(backend, index, question, stop_after_first_token=True))[0])
    stop.set()
    for holder in holders:
        holder.cancel()
    await asyncio.gather(*holders, return_exceptions=True)
    result = summarise(direct, through)
    result["open_streams"] = level
    result["rss_mb"] = round(rss_held, 1)
    result["kb_per_stream"] = round((rss_held - rss_before) * 1024 / level, 1)
    return result


async def bench_backend(kind: str, args: argparse.Namespace, worker_url: str) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=4000, max_keepalive_connections=4000)
    async with (
        httpx.AsyncClient(timeout=STREAM_TIMEOUT, limits=limits) as http,
        surge(kind, worker_url, args.users, http) as backend,
    ):
        print(f"[{kind}] added TTFT at light load ({args.pairs} turns each way)", file=sys.stderr)
        light = await added_ttft(http, backend, worker_url, args.pairs)
        print(f"[{kind}] CPU per 1,000 relayed tokens ({args.cpu_turns} turns)", file=sys.stderr)
        cpu = await cpu_per_1000_tokens(backend, args.cpu_turns)
        levels = []
        for level in args.levels:
            print(f"[{kind}] holding {level} open streams", file=sys.stderr)
            levels.append(await hold_streams(http, backend, worker_url, level, args.probes))
            if levels[-1]["added_p99_ms"] > TTFT_BUDGET_MS * 4:
                break  # far past the budget: higher levels only take longer to say the same
    within = [entry["open_streams"] for entry in levels if entry["added_p99_ms"] < TTFT_BUDGET_MS]
    return {
        "backend": kind,
        "light_load": light,
        "cpu": cpu,
        "levels": levels,
        "max_streams_within_50ms_p99": max(within) if within else 0,
        "kb_per_stream": levels[-1]["kb_per_stream"] if levels else None,
    }


def print_report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        "\nGateway overhead (WORKLOAD.md benchmark 2): one Surge process, one simulated worker in real time"
    )
    print(f"parameters: {vars(args)}")
    header = (
        f"{'backend':<10} {'added TTFT p50':>15} {'added TTFT p99':>15} {'CPU s / 1k tok':>15} "
        f"{'streams @p99<50ms':>18} {'KB / stream':>12}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        light = result["light_load"]
        print(
            f"{result['backend']:<10} {light['added_p50_ms']:>12.1f} ms {light['added_p99_ms']:>12.1f} ms "
            f"{result['cpu']['cpu_s_per_1000_tokens']:>15.3f} {result['max_streams_within_50ms_p99']:>18} "
            f"{result['kb_per_stream'] or 0:>12.1f}"
        )
    print("\nper level of open streams (probe turns measured both ways while the streams flow):")
    for result in results:
        for level in result["levels"]:
            print(
                f"  {result['backend']:<10} {level['open_streams']:>5} streams:"
                f" direct p99 {level['direct_p99_ms']:>7.1f} ms,"
                f" through Surge p99 {level['surge_p99_ms']:>7.1f} ms,"
                f" added p99 {level['added_p99_ms']:>7.1f} ms, RSS {level['rss_mb']:.0f} MB"
            )


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    with worker(max_tokens_pool=20_000_000) as worker_url:
        return [await bench_backend(kind, args, worker_url) for kind in args.backends]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"]
    )
    parser.add_argument("--levels", nargs="+", type=int, default=[25, 50, 100, 200, 400])
    parser.add_argument("--pairs", type=int, default=100, help="turns each way for the light-load TTFT")
    parser.add_argument("--cpu-turns", type=int, default=60, help="turns for the CPU measurement")
    parser.add_argument("--probes", type=int, default=30, help="probe turns each way per level")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "bench_gateway.json")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print_report(results, args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"parameters": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2)
    )
    print(f"\nwritten: {args.json}")
    if not results or any(not r["levels"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
