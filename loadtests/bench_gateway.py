"""Benchmark 2 of WORKLOAD.md, gateway overhead: what Surge adds between a phone and an SGLang worker.

Each phase runs with the others quiet, on a fresh Surge process, for PostgreSQL + Redis (the production
configuration the targets are for) and for SQLite (the embedded default):

- **idle**: the CPU of a process with nothing to do (health checks, heartbeats, sweeps, checkpoints, the
  push poll, the admission tick), and the statements and Redis commands it sends meanwhile;
- **turns**: short answers (16 tokens, thinking off), a few at a time: CPU per turn (accept + finish +
  everything around it, idle subtracted), SQL statements, transactions, WAL bytes and Redis commands per
  turn;
- **tokens**: long reasoning answers streaming at once, worker at real speed with ``--stream-interval 1``
  (a chunk per token, SGLang's default): CPU per relayed token (idle and the turns' own cost subtracted),
  tokens per event sent to the client, and the database work of a long turn next to a short one's;
- **light load**: added time to first token, p50/p99 (the same turns straight to the worker and through
  Surge, one at a time, each finding the worker idle);
- **openai**: the same light-load pairs, but through the OpenAI-compatible API
  (``/openai/v1/chat/completions``, streamed, with an API key): added time to first token p50/p99. It
  stores nothing, so it should be the cheapest path through Surge;
- **streams held**: ``--levels`` of realistic reasoning answers open at once (real speed, ~30-60 tokens/s
  per stream, thinking on, at most 3,000 output tokens; each restarts when it ends), with probe turns
  both ways for the added TTFT, the gaps between a stream's deltas through Surge next to the gaps of
  direct streams of the same worker (the *added inter-delta delay* is the difference of their p99), the
  memory per open stream, the CPU of each process (Surge, the simulated worker, this client: they share
  the machine) and how late Surge's event loop runs (``surge_event_loop_lag_seconds``: each step of a
  turn waits about that long when Surge's core is saturated). A level is held when both p99s are within
  50 ms. The largest level is profiled with py-spy; its top frames are saved beside the JSON.

Everything goes through the product's own client (``AsyncSurge``), except the streams that hold a level
open: those are read off their sockets (``loadtests.stream_tap``), so that this driver leaves the cores
to Surge; the worker is read with the SDK's event-stream decoder. Database work is counted by Surge
itself (``surge_db_statements_total``) and by PostgreSQL (transactions and WAL bytes of the benchmark's
database; WAL is server-wide), Redis commands by Redis (``INFO commandstats``, server-wide): run it on a
quiet machine.

    uv run python -m loadtests.bench_gateway [--levels 250 500 1000 2000] [--backends postgres sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import redis.asyncio as aioredis
from surge import AsyncSurge, ContentEvent, DoneEvent, ReasoningEvent, SurgeError, aiter_sse

from loadtests.benchenv import UNLIMITED_USER
from loadtests.database import POSTGRES_DSN, create_postgres, drop_postgres, migrate, postgres_url
from loadtests.profile_summary import summarise_profile
from loadtests.redis_keys import drop_prefix
from loadtests.sglang_sim import SimConfig, free_port, start_subprocess, stop_subprocess
from loadtests.sglang_sim.textgen import sample_text
from loadtests.stream_tap import TapFailed, tap_turn
from loadtests.surge_server import serve

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("SURGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MODEL, SHORT, LONG = "deepseek-v3.1", "bench-short", "bench-long"
BUDGET_MS = 50.0
# The pause after each light-load request, for the worker to be idle again (see ``light_pairs``).
LIGHT_PAUSE_S = 0.1
PHASES = ("turns", "tokens", "light", "openai", "hold")
STREAM_TIMEOUT = httpx.Timeout(600, connect=30)
# What both paths send as the system prompt (Surge's is set to it): as long as Surge's default, 48 tokens.
SYSTEM_PROMPT = sample_text(1, 48)
# The simulated worker's pace: a decode step of 20 ms plus 5 us per running request gives ~45 tokens/s
# per stream at 300 streams and ~40 at 1,000 (WORKLOAD.md: real streams run at 20-60 tokens/s).
DECODE_STEP_MS, DECODE_PER_REQUEST_MS = 20.0, 0.005


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


# --- what the machine says ---
@dataclass
class Reading:
    """Counters at one instant: CPU seconds per process, and what Surge, PostgreSQL, Redis and the worker
    counted."""

    at: float
    cpu: dict[str, float]
    statements: float
    flushes: float
    tokens: float
    turns: float
    # Surge's event loop: wake-ups sampled, their total lateness, and those later than 50 ms.
    lag_samples: float = 0.0
    lag_s: float = 0.0
    lag_within_50ms: float = 0.0
    transactions: float = 0.0
    rows_written: float = 0.0
    database_bytes: float = 0.0
    redis_commands: float = 0.0
    redis_by_command: dict[str, float] = field(default_factory=dict)

    def per(self, earlier: Reading, what: str) -> float:
        return float(getattr(self, what) - getattr(earlier, what))


def metric_sum(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@dataclass
class Rig:
    """The processes of one run and how to read their counters."""

    kind: str
    url: str
    worker_url: str
    database_name: str | None
    processes: dict[str, psutil.Process]
    http: httpx.AsyncClient
    redis: aioredis.Redis | None = None
    users: list[AsyncSurge] = field(default_factory=list)
    conversations: list[str] = field(default_factory=list)

    @property
    def surge(self) -> psutil.Process:
        return self.processes["surge"]

    async def read(self) -> Reading:
        surge_metrics = (await self.http.get(f"{self.url}/metrics")).text
        worker_metrics = (await self.http.get(f"{self.worker_url}/metrics")).text
        reading = Reading(
            at=time.monotonic(),
            cpu={name: cpu_s(process) for name, process in self.processes.items()},
            statements=metric_sum(surge_metrics, "surge_db_statements_total{"),
            flushes=metric_sum(surge_metrics, "surge_stream_flushes_total"),
            tokens=metric_sum(worker_metrics, "sglang:generation_tokens_total"),
            turns=metric_sum(surge_metrics, "surge_turns_total{"),
            lag_samples=metric_sum(surge_metrics, "surge_event_loop_lag_seconds_count"),
            lag_s=metric_sum(surge_metrics, "surge_event_loop_lag_seconds_sum"),
            lag_within_50ms=metric_sum(surge_metrics, 'surge_event_loop_lag_seconds_bucket{le="0.05"}'),
        )
        if self.database_name is not None:
            connection = await asyncpg.connect(POSTGRES_DSN)
            try:
                row = await connection.fetchrow(
                    "SELECT xact_commit + xact_rollback AS xacts, tup_inserted + tup_updated + tup_deleted"
                    " AS rows, pg_database_size(datname) AS size FROM pg_stat_database WHERE datname = $1",
                    self.database_name,
                )
                if row is not None:
                    reading.transactions, reading.rows_written = float(row["xacts"]), float(row["rows"])
                    reading.database_bytes = float(row["size"])
            finally:
                await connection.close()
        if self.redis is not None:
            stats = await self.redis.info("commandstats")
            reading.redis_by_command = {
                name.removeprefix("cmdstat_"): float(e["calls"]) for name, e in stats.items()
            }
            reading.redis_commands = sum(reading.redis_by_command.values())
        return reading


def cores(later: Reading, earlier: Reading) -> dict[str, float]:
    span = max(1e-9, later.at - earlier.at)
    return {name: round((later.cpu[name] - earlier.cpu[name]) / span, 3) for name in later.cpu}


# --- processes ---
@contextlib.contextmanager
def worker() -> Iterator[tuple[str, psutil.Process]]:
    config = SimConfig(
        port=free_port(),
        served_model_name=MODEL,
        chat_template="deepseek-v3.1",
        reasoning_parser="deepseek-r1",
        enable_cache_report=True,
        enable_metrics=True,
        sim_speedup=1.0,
        stream_interval=1,
        max_running_requests=8192,
        max_total_tokens=50_000_000,
        sim_decode_step_ms=DECODE_STEP_MS,
        sim_decode_step_per_req_ms=DECODE_PER_REQUEST_MS,
    )
    proc, url = start_subprocess(config)
    try:
        yield url, psutil.Process(proc.pid)
    finally:
        stop_subprocess(proc)


@contextlib.asynccontextmanager
async def database(kind: str) -> AsyncIterator[tuple[dict[str, str], str | None]]:
    """The environment of a fresh database (and Redis) for one Surge, and the PostgreSQL database's name."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite+aiosqlite:///{directory}/bench.sqlite3"
            await migrate(url)
            yield {"SURGE_DATABASE_URL": url, "SURGE_DATA_DIR": directory}, None
        return
    name = await create_postgres("surge_gateway")
    prefix = f"surge-bench-{uuid.uuid4().hex[:8]}"
    try:
        await migrate(postgres_url(name))
        yield {"SURGE_DATABASE_URL": postgres_url(name), "SURGE_REDIS_URL": REDIS_URL,
               "SURGE_REDIS_KEY_PREFIX": prefix}, name  # fmt: skip
    finally:
        await drop_postgres(name)
        # The streams of turns still running when a level's Surge stopped would stay a day.
        await drop_prefix(REDIS_URL, prefix)


def models(worker_url: str) -> str:
    spec = {"display_name": "bench", "workers": [worker_url], "thinking": "optional"}
    return json.dumps(
        [
            {**spec, "id": MODEL, "max_output_tokens": 32768},
            {**spec, "id": SHORT, "upstream_model": MODEL, "max_output_tokens": 16},
            {**spec, "id": LONG, "upstream_model": MODEL, "max_output_tokens": 3000},
        ]
    )


@contextlib.asynccontextmanager
async def rig(
    kind: str, worker_url: str, worker_process: psutil.Process, users: int, http: httpx.AsyncClient,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Rig]:  # fmt: skip
    """A fresh Surge on a fresh database, with ``users`` signed-up clients (a conversation each)."""
    async with database(kind) as (env_db, database_name):
        env = {
            **env_db,
            **UNLIMITED_USER,
            "SURGE_SYSTEM_PROMPT": SYSTEM_PROMPT,
            "SURGE_MODELS": models(worker_url),
            "SURGE_DATABASE_POOL_SIZE": "20",
            **(extra_env or {}),
        }
        redis = aioredis.Redis.from_url(REDIS_URL) if "SURGE_REDIS_URL" in env else None
        try:
            async with serve(env) as process:
                setup = Rig(
                    kind=kind,
                    url=process.url,
                    worker_url=worker_url,
                    database_name=database_name,
                    processes={
                        "surge": psutil.Process(process.pid),
                        "worker": worker_process,
                        "client": psutil.Process(os.getpid()),
                    },
                    http=http,
                    redis=redis,
                )
                for index in range(users):
                    client = AsyncSurge(base_url=process.url, http_client=http, timeout=STREAM_TIMEOUT)
                    await client.auth.sign_up(
                        f"bench{index}-{uuid.uuid4().hex[:6]}@example.com", "benchmark-pw"
                    )
                    setup.users.append(client)
                    setup.conversations.append((await client.conversations.create()).id)
                yield setup
        finally:
            if redis is not None:
                await redis.aclose()


# --- one turn, two ways ---
async def direct_stream(
    http: httpx.AsyncClient, worker_url: str, question: str, max_tokens: int, *, thinking: bool = False,
    gaps: Gaps | None = None, stop_after_first: bool = False,
) -> float:  # fmt: skip
    """Seconds to the first token straight from the worker, with the prompt Surge would send; the gaps
    between its chunks with text go into ``gaps``."""
    body = {
        "model": MODEL,
        "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}],
        "stream": True,
        "max_tokens": max_tokens,
        "chat_template_kwargs": {"thinking": thinking},
        "separate_reasoning": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first = previous = None
    async with http.stream("POST", f"{worker_url}/v1/chat/completions", json=body) as response:
        async for event in aiter_sse(response):
            if event.data == "[DONE]":
                continue
            for choice in json.loads(event.data).get("choices", []):
                delta = choice.get("delta") or {}
                if delta.get("content") or delta.get("reasoning_content"):  # not the empty role chunk
                    now = time.perf_counter()
                    if first is None:
                        first = now - started
                        if stop_after_first:
                            return first
                    elif gaps is not None and previous is not None:
                        gaps.note(now - previous)
                    previous = now
    return first if first is not None else float("nan")


class Gaps(list[float]):
    """Gaps between consecutive deltas of the streams feeding it, kept only while ``recording``."""

    recording = False

    def note(self, gap: float) -> None:
        if self.recording:
            self.append(gap)


@dataclass
class TurnResult:
    ttft: float
    tokens: int
    events: int


async def surge_turn(
    setup: Rig, index: int, question: str, *, model: str = MODEL, thinking: bool = False,
    stop_after_first: bool = False, gaps: Gaps | None = None, on_first: Callable[[], None] | None = None,
) -> TurnResult:  # fmt: skip
    """One streamed turn through Surge with the SDK: seconds to the first token, the tokens relayed (the
    answer's completion tokens from its ``done`` event) and the delta events it took; the gaps between
    those events go into ``gaps``; ``on_first`` is called at the first token.

    Each turn starts a new root (``parent_id=None``): the users' conversations carry many turns at once,
    and the prompt stays the system prompt and the question, as on the direct path."""
    client = setup.users[index % len(setup.users)]
    conversation = setup.conversations[index % len(setup.conversations)]
    started = time.perf_counter()
    first = previous = None
    tokens = events = 0
    stream = client.messages.stream(conversation, question, model=model, thinking=thinking, parent_id=None)
    async with stream:
        async for event in stream:
            if isinstance(event, ReasoningEvent | ContentEvent):
                now = time.perf_counter()
                events += 1
                if first is None:
                    first = now - started
                    if on_first is not None:
                        on_first()
                    if stop_after_first:
                        break
                elif gaps is not None and previous is not None:
                    gaps.note(now - previous)
                previous = now
            elif isinstance(event, DoneEvent) and event.message.usage is not None:
                tokens = event.message.usage.completion_tokens
    if stop_after_first and stream.message_id is not None:
        # Only the first token was wanted: stop the answer rather than load the worker with it.
        await client.messages.cancel(stream.message_id)
    return TurnResult(first if first is not None else float("nan"), tokens, events)


# --- the phases ---
async def idle_phase(setup: Rig, seconds: float) -> dict[str, Any]:
    await asyncio.sleep(3)  # what sign-up started settles
    before = await setup.read()
    await asyncio.sleep(seconds)
    after = await setup.read()
    span = after.at - before.at
    return {
        "seconds": round(span, 1),
        "cpu_share_of_a_core": cores(after, before)["surge"],
        "statements_per_s": round(after.per(before, "statements") / span, 2),
        "redis_commands_per_s": round(after.per(before, "redis_commands") / span, 2),
        "redis_commands": redis_breakdown(before, after),
    }


async def turn_phase(
    setup: Rig, turns: int, idle: dict[str, Any], profile: Profile | None = None
) -> dict[str, Any]:
    slots = asyncio.Semaphore(8)

    async def one(index: int) -> None:
        async with slots:
            await surge_turn(setup, index, f"Short {index} {uuid.uuid4().hex}", model=SHORT)

    await asyncio.gather(*(one(index) for index in range(20)))  # warm: connections, caches, plans
    before = await setup.read()
    spy = profile_surge(setup, profile, seconds=10) if profile is not None else None
    await asyncio.gather(*(one(index) for index in range(turns)))
    if spy is not None:
        await asyncio.to_thread(spy.wait, 60)
    await asyncio.sleep(1.5)  # the last turns' checkpoints
    after = await setup.read()
    span = after.at - before.at
    cpu = after.cpu["surge"] - before.cpu["surge"] - idle["cpu_share_of_a_core"] * span
    return {
        "turns": turns,
        "cpu_ms_per_turn": round(cpu / turns * 1000, 2),
        "statements_per_turn": round(
            (after.per(before, "statements") - idle["statements_per_s"] * span) / turns, 2
        ),
        "transactions_per_turn": round(after.per(before, "transactions") / turns, 2),
        "rows_written_per_turn": round(after.per(before, "rows_written") / turns, 2),
        "database_kb_per_turn": round(after.per(before, "database_bytes") / turns / 1024, 2),
        "redis_commands_per_turn": round(
            (after.per(before, "redis_commands") - idle["redis_commands_per_s"] * span) / turns, 2
        ),
        "redis_commands": redis_breakdown(before, after),
    }


async def token_phase(
    setup: Rig, streams: int, idle: dict[str, float], cpu_ms_per_turn: float, profile: Profile | None = None
) -> dict[str, Any]:
    """``streams`` long reasoning answers at once, at real speed, from their send to their end: CPU per
    relayed token (the process's idle work and the turns' own cost subtracted), tokens per event the
    client got, and the database work of a long turn (compare with a short one's: it should not grow)."""
    before = await setup.read()
    if profile is not None:
        asyncio.get_running_loop().call_later(15, profile_surge, setup, profile, 15)
    turns = await asyncio.gather(
        *(
            surge_turn(
                setup, 20_000 + index, f"Think it through {uuid.uuid4().hex}", model=LONG, thinking=True
            )
            for index in range(streams)
        ),
        return_exceptions=True,
    )
    await asyncio.sleep(1.5)  # the last turns' checkpoints
    after = await setup.read()
    ended = [turn for turn in turns if isinstance(turn, TurnResult) and turn.tokens]
    span = after.at - before.at
    tokens = after.per(before, "tokens")
    cpu = (
        after.cpu["surge"] - before.cpu["surge"]
        - idle["cpu_share_of_a_core"] * span
        - len(ended) * cpu_ms_per_turn / 1000
    )  # fmt: skip
    background = idle["statements_per_s"] * span
    return {
        "streams": streams,
        "ended": len(ended),
        "seconds": round(span, 1),
        "relayed_tokens": int(tokens),
        "cpu_us_per_token": round(cpu / max(1.0, tokens) * 1e6, 2),
        "tokens_per_event": round(sum(t.tokens for t in ended) / max(1, sum(t.events for t in ended)), 2),
        "mean_tokens_per_turn": round(sum(t.tokens for t in ended) / max(1, len(ended))),
        "statements_per_turn": round((after.per(before, "statements") - background) / max(1, len(ended)), 2),
        "transactions_per_turn": round(after.per(before, "transactions") / max(1, len(ended)), 2),
        "rows_written_per_turn": round(after.per(before, "rows_written") / max(1, len(ended)), 2),
        "database_kb_per_turn": round(after.per(before, "database_bytes") / max(1, len(ended)) / 1024, 2),
        "redis_commands_per_turn": round(
            (after.per(before, "redis_commands") - idle["redis_commands_per_s"] * span) / max(1, len(ended)),
            2,
        ),
        "redis_commands": redis_breakdown(before, after),
    }


def redis_breakdown(before: Reading, after: Reading) -> dict[str, int]:
    return {
        name: int(calls - before.redis_by_command.get(name, 0))
        for name, calls in sorted(after.redis_by_command.items(), key=lambda item: -item[1])
        if calls - before.redis_by_command.get(name, 0) > 0
    }


async def light_pairs(
    pairs: int, direct: Callable[[str], Awaitable[float]], through: Callable[[str], Awaitable[float]]
) -> dict[str, float]:
    """The same question straight to the worker and through Surge, one request at a time: TTFT p50/p99 of
    each and the difference.

    Each request waits for the worker to be idle (``LIGHT_PAUSE_S``): one sent right behind another meets
    a worker still in a decode step for it and waits up to a step (20 ms here), which would land on
    whichever path went second. The order within a pair alternates for what remains of that."""
    direct_s: list[float] = []
    through_s: list[float] = []
    for index in range(pairs):
        question = f"Question {index}: {uuid.uuid4().hex} what is the capital of France?"
        steps = [(direct_s, direct), (through_s, through)]
        for samples, send in steps if index % 2 == 0 else reversed(steps):
            samples.append(await send(question))
            await asyncio.sleep(LIGHT_PAUSE_S)
    return compare(direct_s, through_s)


async def light_phase(setup: Rig, pairs: int) -> dict[str, float]:
    """Added TTFT of a conversation turn at light load."""

    async def direct(question: str) -> float:
        # Another text than Surge's: neither may find the other's prompt cached on the worker.
        return await direct_stream(
            setup.http, setup.worker_url, f"{question} (direct)", 64, stop_after_first=True
        )

    async def through(question: str) -> float:
        return (await surge_turn(setup, 0, question, stop_after_first=True)).ttft

    return await light_pairs(pairs, direct, through)


async def openai_ttft(setup: Rig, key: str, question: str) -> float:
    """Seconds to the first token through ``/openai/v1/chat/completions`` (streamed); hanging up right
    after it cancels the answer upstream."""
    body = {
        "model": MODEL,
        "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}],
        "stream": True,
        "max_tokens": 64,
    }
    headers = {"Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    url = f"{setup.url}/openai/v1/chat/completions"
    async with setup.http.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        async for event in aiter_sse(response):
            if event.data == "[DONE]":
                break
            for choice in json.loads(event.data).get("choices", []):
                delta = choice.get("delta") or {}
                if delta.get("content") or delta.get("reasoning_content"):  # not the role chunk
                    return time.perf_counter() - started
    return float("nan")


async def openai_phase(setup: Rig, pairs: int) -> dict[str, float]:
    """The light-load pairs through the OpenAI-compatible API instead of a conversation turn."""
    key = (await setup.users[0].api_keys.create("bench")).secret

    async def direct(question: str) -> float:
        # Another text than Surge's: neither may find the other's prompt cached on the worker.
        return await direct_stream(
            setup.http, setup.worker_url, f"{question} (direct)", 64, stop_after_first=True
        )

    return await light_pairs(pairs, direct, lambda question: openai_ttft(setup, key, question))


def compare(direct: list[float], through: list[float], prefix: str = "") -> dict[str, float]:
    direct_ms = [value * 1000 for value in direct if value == value]
    through_ms = [value * 1000 for value in through if value == value]
    return {
        f"{prefix}direct_p50_ms": round(percentile(direct_ms, 0.5), 1),
        f"{prefix}direct_p99_ms": round(percentile(direct_ms, 0.99), 1),
        f"{prefix}surge_p50_ms": round(percentile(through_ms, 0.5), 1),
        f"{prefix}surge_p99_ms": round(percentile(through_ms, 0.99), 1),
        f"{prefix}added_p50_ms": round(percentile(through_ms, 0.5) - percentile(direct_ms, 0.5), 1),
        f"{prefix}added_p99_ms": round(percentile(through_ms, 0.99) - percentile(direct_ms, 0.99), 1),
    }


async def hold_phase(setup: Rig, level: int, probes: int, profile: Profile | None) -> dict[str, Any]:
    """Keep ``level`` realistic reasoning answers open through Surge (and a few straight to the worker) and
    measure meanwhile: probe TTFT both ways, the gaps between deltas both ways, memory, CPU."""
    stop = asyncio.Event()
    started = 0
    surge_gaps, direct_gaps = Gaps(), Gaps()
    all_started = asyncio.Event()

    def streaming() -> None:
        nonlocal started
        started += 1
        if started >= level:
            all_started.set()

    async def through(index: int) -> None:
        # Read off the socket (``stream_tap``), not through the SDK: the driver shares the machine.
        client = setup.users[index % len(setup.users)]
        conversation = setup.conversations[index % len(setup.conversations)]
        counted = False  # once: at its first stream's first delta
        while not stop.is_set():
            previous: float | None = None

            def deltas(now: float, count: int) -> None:
                nonlocal counted, previous
                if not counted:
                    counted = True
                    streaming()
                if previous is not None:
                    surge_gaps.note(now - previous)
                for _ in range(count - 1):
                    surge_gaps.note(0.0)  # events that came in the same piece of the response
                previous = now

            body = {"content": f"Reason about {uuid.uuid4().hex}", "model": LONG, "thinking": True,
                    "parent_id": None}  # fmt: skip
            try:
                token = await client.access_token_for_connection()
                await tap_turn(setup.url, token, conversation, body, on_deltas=deltas)
            except (TapFailed, OSError, SurgeError, TimeoutError):
                await asyncio.sleep(1.0)  # refused or cut off: not a hot loop of retries

    async def straight(index: int) -> None:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                await direct_stream(setup.http, setup.worker_url, f"Reason directly {uuid.uuid4().hex}", 3000,
                                    thinking=True, gaps=direct_gaps)  # fmt: skip

    rss_before = setup.surge.memory_info().rss
    opened = time.monotonic()
    holders = [asyncio.create_task(through(index)) for index in range(level)]
    holders += [asyncio.create_task(straight(index)) for index in range(min(20, level // 10 + 1))]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_started.wait(), 300)
    streaming_after = time.monotonic() - opened
    await asyncio.sleep(8)  # every stream past its first token: let the process reach its steady state
    rss_held = setup.surge.memory_info().rss
    surge_gaps.recording = direct_gaps.recording = True
    before = await setup.read()
    spy = profile_surge(setup, profile, seconds=15) if profile is not None else None
    direct_ttft: list[float] = []
    surge_ttft: list[float] = []
    for index in range(probes):
        question = f"Probe {index} {uuid.uuid4().hex}"
        direct_ttft.append(await direct_stream(setup.http, setup.worker_url, question + " (direct)", 16,
                                               stop_after_first=True))  # fmt: skip
        surge_ttft.append((await surge_turn(setup, index, question, stop_after_first=True)).ttft)
    await asyncio.sleep(max(0.0, 15 - (time.monotonic() - before.at)))  # at least 15 s of gaps
    after = await setup.read()
    surge_gaps.recording = direct_gaps.recording = False
    if spy is not None:
        await asyncio.to_thread(spy.wait, 60)
    stop.set()
    for holder in holders:
        holder.cancel()
    await asyncio.gather(*holders, return_exceptions=True)
    result: dict[str, Any] = {
        "open_streams": level,
        # Until every stream had its first token (at most 300 s), and the whole level with its probes.
        "opened_in_s": round(streaming_after, 1),
        "streaming": started,
        "level_s": round(time.monotonic() - opened, 1),
    }
    result |= compare(direct_ttft, surge_ttft, "ttft_")
    result |= compare(direct_gaps, surge_gaps, "gap_")
    result["gap_samples"] = [len(direct_gaps), len(surge_gaps)]
    result["relayed_tokens_per_s"] = round(after.per(before, "tokens") / (after.at - before.at))
    result["cores"] = cores(after, before)
    samples = max(1.0, after.per(before, "lag_samples"))
    result["loop_lag_mean_ms"] = round(after.per(before, "lag_s") / samples * 1000, 1)
    result["loop_late_over_50ms"] = round(1 - after.per(before, "lag_within_50ms") / samples, 3)
    result["rss_mb"] = round(rss_held / 2**20, 1)
    result["kb_per_stream"] = round((rss_held - rss_before) / 1024 / level, 1)
    result["held"] = bool(result["ttft_added_p99_ms"] < BUDGET_MS and result["gap_added_p99_ms"] < BUDGET_MS)
    if profile is not None and await asyncio.to_thread(profile.path.exists):
        result["profile"] = {
            "raw": str(profile.path),
            "top": await asyncio.to_thread(summarise_profile, profile.path, 15),
        }
    return result


@dataclass(frozen=True)
class Profile:
    """Where a phase's py-spy profile goes, and how many samples a second it takes."""

    path: Path
    rate: int


def profile_surge(setup: Rig, profile: Profile, seconds: int) -> subprocess.Popen[bytes] | None:
    """py-spy on the Surge process for ``seconds`` (non-blocking sampling: it does not stop the process)."""
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy not found: no profile", file=sys.stderr)
        return None
    profile.path.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [spy, "record", "--pid", str(setup.surge.pid), "--duration", str(seconds),
         "--rate", str(profile.rate), "--nonblocking", "--format", "raw", "--output", str(profile.path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def profile_of(args: argparse.Namespace, kind: str, phase: str) -> Profile | None:
    """The profile of ``phase``, beside the JSON; None if that phase is not profiled."""
    if phase.split("-")[0] not in args.profile:
        return None
    return Profile(args.json.with_name(f"{args.json.stem}-{kind}-{phase}-profile.txt"), args.profile_rate)


# --- one backend, every phase ---
async def bench_backend(
    kind: str, args: argparse.Namespace, worker_url: str, worker: psutil.Process
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=10_000, max_keepalive_connections=10_000)
    result: dict[str, Any] = {"backend": kind}
    async with httpx.AsyncClient(timeout=STREAM_TIMEOUT, limits=limits) as http:

        def fresh(users: int = args.users) -> contextlib.AbstractAsyncContextManager[Rig]:
            return rig(kind, worker_url, worker, users, http)

        idle: dict[str, Any] = {
            "cpu_share_of_a_core": 0.0,
            "statements_per_s": 0.0,
            "redis_commands_per_s": 0.0,
        }
        if "turns" in args.phases:
            async with fresh() as setup:
                print(f"[{kind}] idle for {args.idle_s:.0f} s", file=sys.stderr)
                result["idle"] = idle = await idle_phase(setup, args.idle_s)
                print(f"[{kind}] {args.turns} short turns", file=sys.stderr)
                result["turns"] = await turn_phase(setup, args.turns, idle, profile_of(args, kind, "turns"))
        if "tokens" in args.phases:
            async with fresh() as setup:
                print(f"[{kind}] {args.token_streams} long answers, from send to end", file=sys.stderr)
                per_turn = result.get("turns", {}).get("cpu_ms_per_turn", 0.0)
                result["tokens"] = await token_phase(
                    setup, args.token_streams, idle, per_turn, profile_of(args, kind, "tokens")
                )
        if "light" in args.phases:
            async with fresh() as setup:
                print(f"[{kind}] added TTFT at light load ({args.pairs} turns each way)", file=sys.stderr)
                result["light_load"] = await light_phase(setup, args.pairs)
        if "openai" in args.phases:
            async with fresh() as setup:
                print(f"[{kind}] added TTFT via /openai/v1 ({args.pairs} requests each way)", file=sys.stderr)
                result["openai"] = await openai_phase(setup, args.pairs)
        levels: list[dict[str, Any]] = []
        for position, level in enumerate(args.levels if "hold" in args.phases else []):
            async with fresh(users=min(level, 200)) as setup:
                print(f"[{kind}] holding {level} open streams", file=sys.stderr)
                largest = position == len(args.levels) - 1
                profile = profile_of(args, kind, f"hold-{level}") if largest else None
                levels.append(await hold_phase(setup, level, args.probes, profile))
            if not levels[-1]["held"] and levels[-1]["ttft_added_p99_ms"] > BUDGET_MS * 4:
                break  # far past the budget: higher levels only take longer to say the same
    result["levels"] = levels
    held = [entry["open_streams"] for entry in levels if entry["held"]]
    result["max_streams_held"] = max(held) if held else 0
    return result


def _cell(
    phase: dict[str, Any] | None, key: str, width: int, *, spec: str = ".2f", scale: float = 1, unit: str = ""
) -> str:
    """One figure of the report's row, right-aligned in ``width``; a dash for a phase not run."""
    if phase is None:
        return f"{'-':>{width}}"
    return f"{phase[key] * scale:>{width - len(unit)}{spec}}{unit}"


def print_report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        "\nGateway overhead (WORKLOAD.md benchmark 2): one Surge process, one simulated worker in real time"
    )
    print(f"parameters: {vars(args)}")
    header = (
        f"{'backend':<9} {'idle %core':>10} {'ms CPU/turn':>11} {'us CPU/token':>12} {'tok/event':>9} "
        f"{'stmt/turn':>9} {'stmt/long':>9} {'DB KB/turn':>11} {'redis/turn':>10} {'TTFT +p50':>9} "
        f"{'TTFT +p99':>9} {'held':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        # A phase not run (``--phases``) shows a dash rather than hiding the phases that were.
        idle, turns, tokens, light = (r.get(phase) for phase in ("idle", "turns", "tokens", "light_load"))
        held = f"{r['max_streams_held']:>6}" if r["levels"] else f"{'-':>6}"
        row = " ".join(
            [
                _cell(idle, "cpu_share_of_a_core", 10, scale=100),
                _cell(turns, "cpu_ms_per_turn", 11),
                _cell(tokens, "cpu_us_per_token", 12),
                _cell(tokens, "tokens_per_event", 9),
                _cell(turns, "statements_per_turn", 9),
                _cell(tokens, "statements_per_turn", 9),
                _cell(turns, "database_kb_per_turn", 11),
                _cell(turns, "redis_commands_per_turn", 10),
                _cell(light, "added_p50_ms", 9, spec=".1f", unit="ms"),
                _cell(light, "added_p99_ms", 9, spec=".1f", unit="ms"),
                held,
            ]
        )
        print(f"{r['backend']:<9} {row}")
    for r in results:
        if "openai" in r:
            light = r["openai"]
            print(
                f"{r['backend']:<9} /openai/v1/chat/completions (streamed): TTFT direct p50/p99 "
                f"{light['direct_p50_ms']:.1f}/{light['direct_p99_ms']:.1f} ms, via Surge "
                f"{light['surge_p50_ms']:.1f}/{light['surge_p99_ms']:.1f} ms, added "
                f"{light['added_p50_ms']:.1f}/{light['added_p99_ms']:.1f} ms"
            )
    print("\nstreams held (probe TTFT and delta gaps both ways while they flow; cores of each process):")
    for r in results:
        for level in r["levels"]:
            print(
                f"  {r['backend']:<9} {level['open_streams']:>5} streams: TTFT added p50/p99 "
                f"{level['ttft_added_p50_ms']:.1f}/{level['ttft_added_p99_ms']:.1f} ms, delta gaps p99 "
                f"{level['gap_direct_p99_ms']:.1f} direct vs {level['gap_surge_p99_ms']:.1f} ms via Surge "
                f"(added {level['gap_added_p99_ms']:.1f}), {level['relayed_tokens_per_s']} tokens/s, "
                f"{level['kb_per_stream']:.1f} KB/stream, cores {level['cores']}, Surge's event loop "
                f"{level['loop_lag_mean_ms']:.1f} ms late on average ({level['loop_late_over_50ms']:.0%} "
                f"of wake-ups over 50 ms) -> "
                f"{'held' if level['held'] else 'NOT held'}"
            )
            for line in level.get("profile", {}).get("top", [])[:15]:
                print(f"      {line}")


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    with worker() as (worker_url, worker_process):
        return [await bench_backend(kind, args, worker_url, worker_process) for kind in args.backends]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends", nargs="+", default=["postgres", "sqlite"], choices=["sqlite", "postgres"]
    )
    parser.add_argument("--levels", nargs="+", type=int, default=[250, 500, 1000, 2000])
    parser.add_argument("--idle-s", type=float, default=20.0, help="seconds of the idle measurement")
    parser.add_argument("--turns", type=int, default=300, help="short turns for the CPU per turn")
    parser.add_argument("--token-streams", type=int, default=100, help="long answers for the CPU per token")
    parser.add_argument(
        "--token-s", type=float, default=20.0, help="seconds of the CPU per token measurement"
    )
    parser.add_argument("--pairs", type=int, default=100, help="turns each way for the light-load TTFT")
    parser.add_argument("--probes", type=int, default=30, help="probe turns each way per level")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument(
        "--profile", nargs="*", default=["hold"], choices=PHASES,
        help="phases to profile with py-spy (hold: its largest level)",
    )  # fmt: skip
    parser.add_argument(
        "--profile-rate", type=int, default=100,
        help="py-spy samples per second (400 shows short frames; it costs Surge more CPU meanwhile)",
    )  # fmt: skip
    parser.add_argument(
        "--phases", nargs="+", default=list(PHASES), choices=PHASES, help="which measurements to run"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "bench_gateway.json")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print_report(results, args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"parameters": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2)
    )
    print(f"\nwritten: {args.json}")
    if not results or ("hold" in args.phases and any(not r["levels"] for r in results)):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
