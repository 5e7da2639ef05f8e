"""Benchmark 1 of WORKLOAD.md, routing quality: which worker gets each turn, and what that costs.

Fleet: simulated SGLang workers (KV 150,000 tokens each, 32 running requests, prefill 20,000 uncached
tokens/s, decode step 30 ms + 0.2 ms per running request, speed-up x20). Workload: the seeded model of
``loadtests/workload.py`` at a steady session rate sized to keep the fleet about 70% busy; a warm-up,
then the measured turns. Every contender runs through the same Surge (so the gateway's overhead is
equal), on a fresh fleet and a fresh database:

    round_robin, least_load, cache_aware (Surge's re-implementation of sglang-router's policy),
    sglang-router (the real one, PyPI, as Surge's single upstream), and ttft (Surge's default).

Reported per contender: prefix-cache hit rate (sum of cached_tokens / sum of prompt_tokens), time to
first token p50/p99 (measured by Surge from accepting the turn to its first token, in real time with
the fleet at x20), turns/s, fleet busy share (while the planned load ran: from the last warm-up turn to
the last turn sent), load imbalance (max/mean busy time per worker). Two limits are computed on the
recorded trace of prompts: the *oracle* (one server holding the whole fleet's cache, LRU) and the *reuse
bound* (unlimited cache: every prefix seen before is a hit).

The users drive Surge through the SDK (``AsyncSurge``: sign-up, conversations, ``messages.send`` and the
answer's ``messages.events``); all of them sign up before the load starts. Also reported: the sessions
started per second against the planned rate, and the cores each process used meanwhile (Surge, the
fleet, sglang-router, this driver): they share the machine.

The trace of prompts is the workers' own (``--sim-trace-file``): the token ids each was sent and
produced, so the limits are computed on exactly what Surge sent, whatever its prompt rules are, without
re-rendering prompts with a copy of them. The per-contender figures are read from Surge's database with
SQL of this module's own (the server's times: accepted, on a worker, first token); Surge runs from its
CLI on a database made with ``surge migrate``. Nothing of the backend is imported.

    uv run python -m loadtests.bench_routing [--turns 3000 --warmup 300] [--contenders ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from surge import APIStatusError, AsyncSurge, DoneEvent, ErrorEvent

from loadtests.bench_gateway import cpu_s
from loadtests.benchenv import UNLIMITED_USER
from loadtests.database import as_datetime, as_uuid, fetch, migrate
from loadtests.sglang_sim import SimConfig, free_port, start_subprocess, stop_subprocess
from loadtests.sglang_sim.radix_cache import RadixCache
from loadtests.sglang_sim.textgen import ANSWER_MEDIAN, ANSWER_SIGMA, REASONING_MEDIAN, REASONING_SIGMA
from loadtests.sglang_sim.trace import read_trace
from loadtests.surge_server import serve
from loadtests.workload import SessionPlan, Workload, WorkloadConfig, system_prompt

ROOT = Path(__file__).resolve().parents[1]
MODEL = "deepseek-v3.1"
TEMPLATE = "deepseek-v3.1"
CONTENDERS = ["round_robin", "least_load", "cache_aware", "sglang-router", "ttft"]
CONTEXT_TOKENS = 131_072
MAX_OUTPUT_TOKENS = 32_768
TIMEOUT = httpx.Timeout(900, connect=30)  # long reasoning at x20 still takes minutes in a deep queue


@dataclass(frozen=True)
class FleetSpec:
    workers: int = 4
    kv_tokens: int = 150_000
    max_running: int = 32
    prefill_tokens_per_s: float = 20_000.0
    decode_step_ms: float = 30.0
    decode_step_per_req_ms: float = 0.2
    speedup: float = 20.0
    # Tokens made within this many real ms go out as one chunk (the first token never waits): keeps
    # the relay work of ~90 streams at x20 within what a 2-core machine shares with 4 simulators.
    emit_interval_ms: float = 100.0
    seed: int = 0

    def sim_config(self, port: int, trace_file: Path | None = None) -> SimConfig:
        return SimConfig(
            port=port,
            served_model_name=MODEL,
            chat_template=TEMPLATE,
            reasoning_parser="deepseek-r1",
            enable_metrics=True,
            enable_cache_report=True,
            max_total_tokens=self.kv_tokens,
            max_running_requests=self.max_running,
            sim_prefill_tokens_per_s=self.prefill_tokens_per_s,
            sim_decode_step_ms=self.decode_step_ms,
            sim_decode_step_per_req_ms=self.decode_step_per_req_ms,
            sim_speedup=self.speedup,
            sim_emit_interval_ms=self.emit_interval_ms,
            sim_seed=self.seed,
            sim_trace_file=str(trace_file) if trace_file else None,
        )


def expected_output_tokens(config: WorkloadConfig) -> float:
    """Mean output tokens per turn under the model (lognormal means; the caps hardly matter)."""
    reasoning = REASONING_MEDIAN * math.exp(REASONING_SIGMA**2 / 2)
    answer = ANSWER_MEDIAN * math.exp(ANSWER_SIGMA**2 / 2)
    return config.p_thinking * reasoning + answer


def session_rate(fleet: FleetSpec, config: WorkloadConfig, busy: float) -> float:
    """Sessions per real second that keep ``busy`` of the fleet's running slots occupied (Little's law)."""
    running = busy * fleet.workers * fleet.max_running
    step_s = (fleet.decode_step_ms + fleet.decode_step_per_req_ms * running / fleet.workers) / 1000
    turn_s = expected_output_tokens(config) * step_s / fleet.speedup
    turns_per_session = min(config.turns_mean, config.turns_cap)
    return running / turn_s / turns_per_session


# --- processes ---
@contextlib.contextmanager
def simulated_fleet(fleet: FleetSpec, traces: Path) -> Iterator[tuple[list[str], list[int]]]:
    """The fleet's workers (their URLs and process ids), each tracing the requests it finished into
    ``traces/trace-<port>.jsonl``."""
    started: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for _ in range(fleet.workers):
            port = free_port()
            process, url = start_subprocess(fleet.sim_config(port, traces / f"trace-{port}.jsonl"))
            started.append(process)
            urls.append(url)
        yield urls, [process.pid for process in started]
    finally:
        for process in started:
            stop_subprocess(process)


@contextlib.contextmanager
def sglang_router(workers: list[str]) -> Iterator[tuple[str, int]]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "sglang_router.launch_router", "--worker-urls", *workers,
            "--policy", "cache_aware", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warn",
            # Not its default 29000, which another router on this machine may hold.
            "--prometheus-port", str(free_port()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("sglang-router exited")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError("sglang-router did not become healthy")
        yield url, process.pid
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()


@contextlib.asynccontextmanager
async def surge(
    policy: str, upstreams: list[str], directory: Path, fleet: FleetSpec
) -> AsyncIterator[tuple[str, str, int]]:
    database = f"sqlite+aiosqlite:///{directory / 'surge.sqlite3'}"
    await migrate(database)
    env = {
        "SURGE_DATABASE_URL": database,
        "SURGE_DATA_DIR": str(directory),
        **UNLIMITED_USER,
        "SURGE_SYSTEM_PROMPT": system_prompt(),
        "SURGE_ROUTING_POLICY": "round_robin" if policy == "sglang-router" else policy,
        # Surge measures in real seconds: at x20 a worker prefills 20x more tokens per real second.
        "SURGE_PREFILL_TOKENS_PER_S": str(fleet.prefill_tokens_per_s * fleet.speedup),
        "SURGE_HEALTH_INTERVAL_S": "1",
        # Long reasoning at x20 still takes minutes of real time in a deep queue.
        "SURGE_FIRST_TOKEN_TIMEOUT_S": "600",
        "SURGE_MODELS": json.dumps(
            [
                {
                    "id": MODEL,
                    "display_name": "bench",
                    "workers": upstreams,
                    # Behind sglang-router Surge sees one upstream: tell admission the whole fleet's slots.
                    "max_running": fleet.workers * fleet.max_running,
                    "context_tokens": CONTEXT_TOKENS,
                    "max_output_tokens": MAX_OUTPUT_TOKENS,
                }
            ]
        ),
    }
    async with serve(env, stop_timeout_s=30) as process:
        yield process.url, database, process.pid


# --- the load ---
@dataclass
class Driver:
    url: str
    workload: Workload
    fleet: FleetSpec
    total_turns: int
    rng: random.Random
    clients: dict[int, AsyncSurge] = field(default_factory=dict)  # one signed-in SDK client per user
    conversations: dict[int, list[str]] = field(default_factory=dict)
    busy_conversations: set[str] = field(default_factory=set)
    accepted: int = 0
    failed: int = 0
    warmup: int = 0  # turns sent before the measured ones
    sessions: int = 0  # started
    driving_s: float = 0.0  # from the first session's start until the last turn was sent
    # (loop.time() of) the last warm-up turn sent and the last turn sent: the load is the planned one
    # between them; before is the ramp, after is the drain.
    warmed_at: float = 0.0
    driven_at: float = 0.0

    async def sign_up(self, http: httpx.AsyncClient, users: int) -> None:
        """Sign every user up before the load starts, a few at a time. Signing up costs tens of
        milliseconds of Argon2 per user by design: done at each user's first session, it held those
        sessions back and took Surge's CPU while the load was being measured."""
        slots = asyncio.Semaphore(8)

        async def one(user: int) -> None:
            async with slots:
                client = AsyncSurge(base_url=self.url, http_client=http, timeout=TIMEOUT)
                await client.auth.sign_up(f"user{user}-{uuid.uuid4().hex[:6]}@bench.example", "benchmark")
                self.clients[user] = client

        await asyncio.gather(*(one(user) for user in range(users)))

    async def session(self, plan: SessionPlan) -> None:
        client = self.clients[plan.user]
        mine = self.conversations.setdefault(plan.user, [])
        conversation = None
        if (
            plan.continues is not None
            and plan.continues < len(mine)
            and mine[plan.continues] not in self.busy_conversations
        ):
            conversation = mine[plan.continues]
        if conversation is None:
            conversation = (await client.conversations.create()).id
            mine.append(conversation)
        self.busy_conversations.add(conversation)
        try:
            for turn in plan.turns:
                if self.accepted >= self.total_turns:
                    return
                await asyncio.sleep(turn.think_time_s / self.fleet.speedup)
                if self.accepted >= self.total_turns:
                    return
                self.accepted += 1
                if self.accepted == self.warmup:
                    self.warmed_at = asyncio.get_running_loop().time()
                if self.accepted == self.total_turns:
                    self.driven_at = asyncio.get_running_loop().time()
                try:
                    sent = await client.messages.send(conversation, turn.text, thinking=turn.thinking)
                except APIStatusError:
                    self.failed += 1
                    return
                if not await self.until_done(client, sent.assistant_message.id):
                    return
        finally:
            self.busy_conversations.discard(conversation)

    async def until_done(self, client: AsyncSurge, answer: str) -> bool:
        """Follow the answer's events (the SDK resumes a dropped stream) until it ends."""
        async with client.messages.events(answer) as stream:
            async for event in stream:
                if isinstance(event, ErrorEvent):
                    self.failed += 1
                    return False
                if isinstance(event, DoneEvent):
                    return True
        return False

    async def run(self, rate_per_s: float) -> None:
        """Start sessions at ``rate_per_s`` (Poisson arrivals) until the turns are sent, then let them end.

        Arrivals keep to a schedule: each is due a random gap after the one before, and a session due while
        this process was busy starts as soon as it can. (Sleeping a gap after each start instead lets every
        late wake-up push all later arrivals back: on a busy machine the load offered quietly falls below
        the plan.)"""
        loop = asyncio.get_running_loop()
        sessions: set[asyncio.Task[None]] = set()
        plans = self.workload.sessions()
        began = due = loop.time()
        while self.accepted < self.total_turns:
            task = asyncio.create_task(self.session(next(plans)))
            sessions.add(task)
            task.add_done_callback(sessions.discard)
            self.sessions += 1
            due += self.rng.expovariate(rate_per_s)
            await asyncio.sleep(max(0.0, due - loop.time()))
        self.driving_s = loop.time() - began
        if sessions:
            await asyncio.gather(*sessions, return_exceptions=True)


class CpuMeter:
    """Cores each role's processes used (user + system) from its creation until ``cores()``: who had the
    machine's CPU while the load ran (the fleet, Surge, the router, this driver all share it)."""

    def __init__(self, roles: dict[str, list[int]]) -> None:
        self.processes = {role: [psutil.Process(pid) for pid in pids] for role, pids in roles.items() if pids}
        self.began = time.monotonic()
        self.start = self._seconds()

    def _seconds(self) -> dict[str, float]:
        return {
            role: sum(cpu_s(process) for process in processes) for role, processes in self.processes.items()
        }

    def cores(self) -> dict[str, float]:
        span = time.monotonic() - self.began
        now = self._seconds()
        return {role: round((now[role] - self.start[role]) / span, 2) for role in now}


async def worker_busy_seconds(workers: list[str]) -> dict[str, float]:
    """Each worker's total request time (virtual seconds), from its sglang:e2e_request_latency_seconds."""
    busy: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for url in workers:
            text = (await http.get(f"{url}/metrics")).text
            busy[url] = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("sglang:e2e_request_latency_seconds_sum")
            )
    return busy


async def sample_busy(
    workers: list[str],
    max_running: int,
    kv_tokens: int,
    stop: asyncio.Event,
    samples: list[tuple[float, float]],
) -> None:
    """The fleet's busy share over time (``loop.time()``, share), from each worker's /get_load: the larger
    of its running-slot share and its KV-memory share."""
    async with httpx.AsyncClient(timeout=5) as http:
        while not stop.is_set():
            shares = []
            for url in workers:
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    ranks = (await http.get(f"{url}/get_load")).json()
                    running = sum(rank["num_reqs"] - rank["num_waiting_reqs"] for rank in ranks)
                    tokens = sum(rank["num_tokens"] for rank in ranks)
                    # Busy: running slots or KV memory, whichever binds.
                    shares.append(min(1.0, max(running / max_running, tokens / kv_tokens)))
            if shares:
                samples.append((asyncio.get_running_loop().time(), statistics.mean(shares)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


# --- what happened, from Surge's database ---
@dataclass(frozen=True)
class StoredMessage:
    """The columns of a ``message`` row that this benchmark reads."""

    id: uuid.UUID
    parent_id: uuid.UUID | None
    role: str
    status: str
    worker: str | None
    prompt_tokens: int | None
    cached_tokens: int | None
    created_at: datetime
    started_at: datetime | None
    first_token_at: datetime | None
    completed_at: datetime | None


MESSAGES = """
    SELECT id, parent_id, role, status, worker, prompt_tokens, cached_tokens,
           created_at, started_at, first_token_at, completed_at
    FROM message
"""


@dataclass
class Record:
    answer: StoredMessage
    branch: list[StoredMessage]


async def records(database: str) -> list[Record]:
    """Every answer that reached a worker, with the branch it answered (root first), oldest first."""
    messages = {}
    for row in await fetch(database, MESSAGES):
        id_, parent, role, status, worker, prompt, cached, created, started, first, completed = row
        message_id, created_at = as_uuid(id_), as_datetime(created)
        if message_id is None or created_at is None:
            raise ValueError(f"a message row without its id or created_at: {row!r}")
        message = StoredMessage(
            id=message_id,
            parent_id=as_uuid(parent),
            role=role,
            status=status,
            worker=worker,
            prompt_tokens=prompt,
            cached_tokens=cached,
            created_at=created_at,
            started_at=as_datetime(started),
            first_token_at=as_datetime(first),
            completed_at=as_datetime(completed),
        )
        messages[message.id] = message
    found = []
    for message in messages.values():
        if message.role != "assistant" or message.started_at is None:
            continue
        branch, cursor = [], messages.get(message.parent_id) if message.parent_id else None
        while cursor is not None:
            branch.append(cursor)
            cursor = messages.get(cursor.parent_id) if cursor.parent_id else None
        found.append(Record(message, list(reversed(branch))))
    found.sort(key=lambda record: record.answer.created_at)
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def summarise(
    name: str, measured: list[Record], busy: list[float], per_worker: dict[str, float]
) -> dict[str, Any]:
    done = [r.answer for r in measured if r.answer.status == "complete" and r.answer.prompt_tokens]
    ttft = [
        (r.answer.first_token_at - r.answer.created_at).total_seconds() * 1000
        for r in measured
        if r.answer.first_token_at is not None
    ]
    busy_time: dict[str, float] = {}
    for answer in done:
        if answer.worker and answer.started_at and answer.completed_at:
            busy_time[answer.worker] = (
                busy_time.get(answer.worker, 0.0) + (answer.completed_at - answer.started_at).total_seconds()
            )
    dispatch_ms = [
        (r.answer.started_at - r.answer.created_at).total_seconds() * 1000
        for r in measured
        if r.answer.started_at
    ]
    upstream_ms = [
        (r.answer.first_token_at - r.answer.started_at).total_seconds() * 1000
        for r in measured
        if r.answer.first_token_at is not None and r.answer.started_at is not None
    ]
    continuing = [r for r in measured if any(m.role == "assistant" and m.worker for m in r.branch)]
    stayed = [
        r for r in continuing if r.answer.worker == [m for m in r.branch if m.role == "assistant"][-1].worker
    ]
    span = max(a.completed_at for a in done) - min(a.created_at for a in done) if done else None
    loads = list(per_worker.values())
    return {
        "contender": name,
        "turns": len(measured),
        "completed": len(done),
        "failed": sum(r.answer.status == "failed" for r in measured),
        "hit_rate": sum(a.cached_tokens or 0 for a in done) / max(1, sum(a.prompt_tokens or 0 for a in done)),
        "ttft_p50_ms": percentile(ttft, 0.5),
        "ttft_p99_ms": percentile(ttft, 0.99),
        "turns_per_s": len(done) / span.total_seconds() if span else 0.0,
        "busy_share": statistics.mean(busy) if busy else float("nan"),
        # Busy time per worker from the workers themselves (so that it holds behind sglang-router too).
        "imbalance": max(loads) / statistics.mean(loads)
        if loads and statistics.mean(loads) > 0
        else float("nan"),
        "per_worker_busy_s": {url: round(seconds, 1) for url, seconds in sorted(per_worker.items())},
        # Diagnostics: where the time to first token went, and how often a conversation kept its worker.
        "dispatch_p50_ms": percentile(dispatch_ms, 0.5),
        "dispatch_p99_ms": percentile(dispatch_ms, 0.99),
        "upstream_ttft_p50_ms": percentile(upstream_ms, 0.5),
        "upstream_ttft_p99_ms": percentile(upstream_ms, 0.99),
        "kept_worker_share": len(stayed) / len(continuing) if continuing else float("nan"),
    }


# --- the limits, on the recorded trace ---
def trace_sequences(traces: Path) -> list[tuple[float, float, list[int], list[int]]]:
    """(start, finish, prompt ids, prompt+output ids) of each request the fleet finished (aborted ones
    left out), from the workers' own traces: exactly what Surge sent them and what they produced."""
    rows = []
    for path in sorted(traces.glob("trace-*.jsonl")):
        for request in read_trace(path):
            if request.finish != "abort":
                sequence = request.prompt_ids + request.output_ids
                rows.append((request.arrival, request.finished, request.prompt_ids, sequence))
    return rows


def replay_hit_rate(
    rows: list[tuple[float, float, list[int], list[int]]], capacity: int | None
) -> tuple[float, int]:
    """Hit rate of one LRU radix cache of ``capacity`` tokens (None: unlimited) over the trace, and the
    distinct tokens the trace put in (its working set).

    As in the simulator, a turn matches its prompt when it starts and inserts prompt and output when it
    finishes; while it runs, its prompt is pinned and its output takes memory (half of it on average,
    since it grows), so the cache gets what running requests leave, as it would on a real server."""
    cache = RadixCache(page_size=1)
    events: list[tuple[float, int, int]] = []
    for index, (start, finish, _, _) in enumerate(rows):
        events.append((start, 1, index))
        events.append((finish, 0, index))
    events.sort()
    pinned: dict[int, Any] = {}
    growing = 0
    cached = prompt = 0

    def fit() -> None:
        if capacity is not None and cache.total_size + growing > capacity:
            cache.evict(cache.total_size + growing - capacity)

    for _, kind, index in events:
        _, _, ids, sequence = rows[index]
        output = len(sequence) - len(ids)
        if kind == 1:
            cached += cache.match_prefix(ids[:-1]).length
            prompt += len(ids)
            node = cache.insert(ids).node
            cache.inc_lock_ref(node)
            pinned[index] = node
            growing += output // 2
        else:
            cache.insert(sequence)
            cache.dec_lock_ref(pinned.pop(index))
            growing -= output // 2
        fit()
    return (cached / prompt if prompt else 0.0), _distinct_tokens(rows)


def _distinct_tokens(rows: list[tuple[float, float, list[int], list[int]]]) -> int:
    """Tokens in the union of all the trace's sequences (the size of an unlimited radix tree)."""
    tree = RadixCache(page_size=1)
    for _, _, _, sequence in rows:
        tree.insert(sequence)
    return tree.total_size


# --- one contender ---
async def run_contender(
    name: str, args: argparse.Namespace, fleet: FleetSpec, config: WorkloadConfig, *, reference: bool
) -> dict[str, Any]:
    """One contender on a fresh fleet and database; the reference keeps its fleet's trace of prompts."""
    rate = args.session_rate or session_rate(fleet, config, args.busy)
    setup_started = time.monotonic()
    with tempfile.TemporaryDirectory() as directory:
        with simulated_fleet(fleet, Path(directory)) as (workers, fleet_pids):
            router = sglang_router(workers) if name == "sglang-router" else contextlib.nullcontext(None)
            with router as routed:
                upstreams = [routed[0]] if routed else workers
                async with surge(name, upstreams, Path(directory), fleet) as (url, database, surge_pid):
                    print(
                        f"[{name}] fleet and Surge up in {time.monotonic() - setup_started:.1f} s",
                        file=sys.stderr,
                    )
                    driver = Driver(
                        url=url,
                        workload=Workload(config, users=args.users),
                        fleet=fleet,
                        total_turns=args.warmup + args.turns,
                        warmup=args.warmup,
                        rng=random.Random(config.seed),
                    )
                    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=500)
                    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as http:
                        await driver.sign_up(http, args.users)
                        cpu = CpuMeter(
                            {
                                "surge": [surge_pid],
                                "fleet": fleet_pids,
                                "sglang-router": [routed[1]] if routed else [],
                                "driver": [os.getpid()],
                            }
                        )
                        busy: list[tuple[float, float]] = []
                        stop = asyncio.Event()
                        sampler = asyncio.create_task(
                            sample_busy(workers, fleet.max_running, fleet.kv_tokens, stop, busy)
                        )
                        started = time.monotonic()
                        await driver.run(rate)
                        stop.set()
                        await sampler
                        elapsed = time.monotonic() - started
                        cores = cpu.cores()
                    per_worker = await worker_busy_seconds(workers)
                answers = await records(database)
        # The workers have stopped: their traces are complete.
        trace = trace_sequences(Path(directory)) if reference else None
    measured = answers[args.warmup :]
    # The fleet's busy share while the planned load was offered: after the warm-up turns, until the last
    # turn was sent (the ramp before and the drain after would dilute it; the drain alone took a minute).
    steady = [share for at, share in busy if driver.warmed_at <= at <= driver.driven_at]
    result = summarise(name, measured, steady, per_worker)
    result.update(
        session_rate=rate,
        # Below the planned rate only if this process could not start sessions as fast as planned.
        sessions_per_s=round(driver.sessions / driver.driving_s, 2) if driver.driving_s else 0.0,
        cores=cores,
        wall_s=round(elapsed, 1),
        refused=driver.failed,
    )
    result["trace"] = trace
    return result


def print_table(results: list[dict[str, Any]], limits: dict[str, Any], params: dict[str, Any]) -> None:
    print("\nRouting quality (WORKLOAD.md benchmark 1)")
    print("parameters:", json.dumps(params))
    header = (
        f"{'contender':<15}{'hit rate':>9}{'TTFT p50':>11}{'TTFT p99':>11}{'turns/s':>9}{'busy':>7}"
        f"{'imbalance':>11}{'failed':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['contender']:<15}{r['hit_rate']:>9.3f}{r['ttft_p50_ms']:>8.0f} ms{r['ttft_p99_ms']:>8.0f} ms"
            f"{r['turns_per_s']:>9.2f}{r['busy_share']:>7.2f}{r['imbalance']:>11.2f}{r['failed']:>8}"
        )
    pooled = f"{limits['fleet_cache_tokens']:,}"
    oracle = limits["oracle_hit_rate"]
    print(f"{'oracle':<15}{oracle:>9.3f}   (one server holding the fleet's {pooled} tokens, LRU)")
    print(f"{'reuse bound':<15}{limits['reuse_bound_hit_rate']:>9.3f}   (unlimited cache)")
    print("\ndiagnostics: accept->dispatch p50/p99, dispatch->first token p50/p99,")
    print("             share of continued conversations kept on their worker")
    for r in results:
        print(
            f"  {r['contender']:<15}{r['dispatch_p50_ms']:>7.0f}/{r['dispatch_p99_ms']:<7.0f} ms"
            f"{r['upstream_ttft_p50_ms']:>9.0f}/{r['upstream_ttft_p99_ms']:<7.0f} ms"
            f"   {r['kept_worker_share']:.2f}"
        )
    print("\nload and CPU: sessions started per s (planned), cores used by each role while it ran")
    for r in results:
        cores = ", ".join(f"{role} {used:.2f}" for role, used in r["cores"].items())
        print(f"  {r['contender']:<15}{r['sessions_per_s']:>6.2f} ({r['session_rate']:.2f})   {cores}")
    print(
        f"working set of the trace: {limits['working_set_tokens']:,} distinct tokens, "
        f"fleet cache: {limits['fleet_cache_tokens']:,} tokens"
    )


async def main_async(args: argparse.Namespace) -> int:
    fleet = FleetSpec(workers=args.workers, speedup=args.speedup)
    config = WorkloadConfig(seed=args.seed)
    results = []
    # The limits are computed on one contender's trace: Surge's default's, else the first one's.
    reference = "ttft" if "ttft" in args.contenders else args.contenders[0]
    for name in args.contenders:
        print(f"[{name}] running {args.warmup}+{args.turns} turns", file=sys.stderr, flush=True)
        results.append(await run_contender(name, args, fleet, config, reference=name == reference))
        r = results[-1]
        print(
            f"[{name}] hit {r['hit_rate']:.3f} ttft p50 {r['ttft_p50_ms']:.0f} ms"
            f" p99 {r['ttft_p99_ms']:.0f} ms busy {r['busy_share']:.2f} in {r['wall_s']} s",
            file=sys.stderr,
            flush=True,
        )
    # The whole trace, warm-up included, so that the limits start from the same cold cache as the fleet.
    rows = next(r["trace"] for r in results if r["contender"] == reference)
    oracle, working_set = replay_hit_rate(rows, fleet.workers * fleet.kv_tokens)
    reuse, _ = replay_hit_rate(rows, None)
    limits = {
        "oracle_hit_rate": oracle,
        "reuse_bound_hit_rate": reuse,
        "working_set_tokens": working_set,
        "fleet_cache_tokens": fleet.workers * fleet.kv_tokens,
        "trace_turns": len(rows),
    }
    for r in results:
        r.pop("trace")
    params = {
        "fleet": asdict(fleet),
        "workload": asdict(config),
        "turns": args.turns,
        "warmup": args.warmup,
        "busy_target": args.busy,
        "users": args.users,
    }
    print_table(results, limits, params)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"parameters": params, "limits": limits, "results": results}, indent=2, default=str)
    )
    print(f"\nwritten: {args.json}")
    return 0 if all(r["completed"] > 0.9 * r["turns"] for r in results) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contenders", nargs="+", default=CONTENDERS, choices=CONTENDERS)
    parser.add_argument("--turns", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--speedup", type=float, default=20.0)
    parser.add_argument(
        "--busy", type=float, default=0.7, help="target busy share of the fleet's running slots"
    )
    parser.add_argument(
        "--session-rate", type=float, default=0.0, help="sessions/s (default: sized for --busy)"
    )
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "bench_routing.json")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
