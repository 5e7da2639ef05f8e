"""Benchmark 3 of WORKLOAD.md, the spike: Locust's app-store spike against Surge on PostgreSQL + Redis.

What it does, in order: creates a fresh PostgreSQL database and flushes one Redis database index;
starts a fixed simulated fleet (``--fleet-workers`` sims with ``--max-running`` slots and a speed-up)
sized so that the baseline keeps it moderately busy and the 30x plateau far exceeds it; starts Surge
with two backend processes (``surge serve --workers 2``); signs up the paid accounts (tier set to
``plus`` in the database) and an admin; runs Locust headless (``loadtests/locustfile.py``) with the
``app_store_spike`` shape, free and paid users 9:1, think times compressed as much as the fleet is
sped up. Every ~2 s it samples the degrade level (``/v1/admin/fleet`` admission and
``surge_degrade_level`` on /metrics), Surge's queue length, the fleet's busy share and prefix-cache hit
rate (the sims' /get_load and /metrics). After the run it waits (bounded) for in-flight turns to
finish, audits the database (loadtests/spike_audit.py), and writes ``report.md``, ``report.json``,
PNG charts and the raw records into ``--report-dir``. Everything it started is stopped and the
database dropped at the end.

Like the users, the orchestrator talks to Surge through the SDK (``AsyncSurge``: sign-ups, the admin's
``admin.fleet()`` and ``health.metrics()``, ``health.ready()``); it makes the database with
``surge migrate`` and sets tiers and audits with SQL of its own; nothing of the backend is imported.

Exit code: 1 on a broken run (a process died, nothing was served, Locust failed) or a failed
correctness check (a lost or duplicated message, an answer left unfinished, a 5xx other than 503 with
Retry-After). The performance checks (paid TTFT p99 on the plateau within 2x of before; the degrade
level rising and falling back) are printed as PASS/FAIL and fail the exit code only with ``--strict``.

    uv run --frozen python -m loadtests.spike [--duration 180] [--base-users 10] [--strict]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import redis
from surge import AsyncSurge, SurgeError

from loadtests.database import create_postgres, driver_dsn, drop_postgres, migrate, postgres_url
from loadtests.locust_support import ShapeSchedule, load_records
from loadtests.sglang_sim import SimConfig, free_port, start_subprocess
from loadtests.spike_audit import answer_times, audit, in_flight
from loadtests.spike_report import (
    attach_answer_times,
    charts,
    checks,
    markdown,
    phase_windows,
    summarise,
    table,
    timeseries,
    turns_of,
)
from loadtests.surge_server import BENCH_SETTINGS, wait_until_up
from loadtests.workload import system_prompt

ROOT = Path(__file__).resolve().parents[1]
REDIS_BASE = os.environ.get("SURGE_SPIKE_REDIS_URL", "redis://127.0.0.1:6379")
MODEL = "deepseek-v3.1"
PASSWORD = "spike-password"  # noqa: S105 (throwaway accounts of a load test)
SAMPLE_INTERVAL_S = 2.0
# What a run that broke raises (a process, a database, Redis or Surge itself failed us): reported, not raised.
BROKEN_RUN = (RuntimeError, OSError, asyncpg.PostgresError, redis.RedisError, httpx.HTTPError, SurgeError)


@dataclass
class Run:
    args: argparse.Namespace
    directory: Path
    database: str = ""
    database_url: str = ""
    redis_url: str = ""
    sims: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)
    surge: subprocess.Popen[bytes] | None = None
    surge_url: str = ""
    locust: subprocess.Popen[bytes] | None = None
    admin: dict[str, str] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# --- set-up ---
async def create_database(run: Run) -> None:
    """A fresh PostgreSQL database, migrated with Surge's own CLI."""
    run.database = await create_postgres("surge_spike")
    run.database_url = postgres_url(run.database)
    await migrate(run.database_url)


async def drop_database(run: Run) -> None:
    if run.database:
        await drop_postgres(run.database)


def flush_redis(run: Run) -> None:
    run.redis_url = f"{REDIS_BASE}/{run.args.redis_db}"
    redis.Redis.from_url(run.redis_url, socket_connect_timeout=3).flushdb()


def sim_config(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        port=free_port(),
        served_model_name=MODEL,
        model_path="deepseek-ai/DeepSeek-V3.1",
        chat_template="deepseek-v3.1",
        reasoning_parser="deepseek-r1",
        enable_metrics=True,
        enable_cache_report=True,
        max_total_tokens=args.kv_tokens,
        max_running_requests=args.max_running,
        enable_priority_scheduling=not args.no_priority_scheduling,
        sim_prefill_tokens_per_s=args.prefill_tokens_per_s,
        sim_decode_step_ms=30.0,
        sim_decode_step_per_req_ms=0.2,
        sim_speedup=args.speedup,
        sim_emit_interval_ms=100.0,
        sim_seed=args.seed,
    )


def start_fleet(run: Run) -> None:
    for _ in range(run.args.fleet_workers):
        process, url = start_subprocess(sim_config(run.args))
        run.sims.append(process)
        run.workers.append(url)


def surge_env(run: Run, port: int) -> dict[str, str]:
    args = run.args
    big = "1000000"
    return {
        **os.environ,
        **BENCH_SETTINGS,  # titles off among them: every turn in the fleet is a user's
        "SURGE_DATABASE_URL": run.database_url,
        "SURGE_REDIS_URL": run.redis_url,
        "SURGE_PORT": str(port),
        "SURGE_DATA_DIR": str(run.directory),
        "SURGE_SHUTDOWN_GRACE_S": "3",
        "SURGE_SYSTEM_PROMPT": system_prompt(),
        "SURGE_PREFILL_TOKENS_PER_S": str(args.prefill_tokens_per_s * args.speedup),
        "SURGE_HEALTH_INTERVAL_S": "1",
        # A phone may have a turn it walked away from still running when it sends the next one.
        "SURGE_TIER_FREE_CONCURRENT_TURNS": "4",
        "SURGE_TIER_PLUS_CONCURRENT_TURNS": "4",
        # The ladder's quiet period, compressed like every other wait of the run.
        "SURGE_ADMISSION_LOWER_AFTER_S": str(max(2.0, 40.0 / args.time_compression)),
        "SURGE_ADMISSION_RAISE_AFTER_S": str(max(0.5, 2.0 / args.time_compression)),
        # SURGE_ADMISSION_OVERLOADED_SIGNUPS_PER_MIN keeps its default (120 a minute), not compressed:
        # the default is sized for fleets far larger than this one's 32 slots.
        # Refused clients come back when told to: that wait is compressed too.
        "SURGE_ADMISSION_SHED_RETRY_AFTER_S": str(max(1.0, 30.0 / args.time_compression)),
        # The workload pastes documents of up to 8,000 tokens (~40,000 characters).
        "SURGE_CONTENT_MAX_CHARS": "100000",
        # Every Locust user comes from 127.0.0.1: per-IP limits would measure the load generator.
        "SURGE_SIGNUP_PER_IP_PER_HOUR": big,
        "SURGE_LOGIN_PER_IP_PER_10MIN": big,
        "SURGE_ADMISSION_MESSAGES_PER_IP_PER_MIN": big,
        "SURGE_ADMISSION_MESSAGES_PER_USER_PER_MIN": "1000",
        # Time is compressed: a user's conversations come faster than a person's would.
        "SURGE_ADMISSION_CONVERSATIONS_PER_USER_PER_MIN": "1000",
        # Quotas are not what this run measures.
        "SURGE_TIER_FREE_MESSAGES": big,
        "SURGE_TIER_PLUS_MESSAGES": big,
        "SURGE_TIER_FREE_TOKENS": big,
        "SURGE_TIER_PLUS_TOKENS": big,
        "SURGE_ADMISSION_MAX_QUEUE_WAIT_S": str(args.max_queue_wait_s),
        "SURGE_MODELS": json.dumps(
            [
                {
                    "id": MODEL,
                    "display_name": "DeepSeek V3.1 (simulated spike fleet)",
                    "workers": run.workers,
                    "thinking": "optional",
                    "thinking_switch": "thinking",
                    "priority_scheduling": not args.no_priority_scheduling,
                }
            ]
        ),
    }


async def start_surge(run: Run) -> None:
    port = free_port()
    run.surge = spawn(
        [sys.executable, "-m", "backend.cli", "serve", "--workers", str(run.args.surge_workers)],
        run.directory / "surge.log",
        env=surge_env(run, port),
        new_session=True,  # its worker processes share a group this run alone owns
    )
    run.surge_url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(run.surge_url, run.surge.poll, ready=True)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}; see {run.directory / 'surge.log'}") from exc


async def create_accounts(run: Run, paid: int) -> list[dict[str, str]]:
    """Sign up an admin and ``paid`` accounts through the API, then set their tiers in the database
    (there is no API for tiers)."""
    tag = uuid.uuid4().hex[:6]
    accounts = [{"email": f"paid-{tag}-{i}@spike.example", "password": PASSWORD} for i in range(paid)]
    admin = {"email": f"admin-{tag}@spike.example", "password": PASSWORD}
    slots = asyncio.Semaphore(8)
    async with httpx.AsyncClient(timeout=30) as http:

        async def sign_up(account: dict[str, str]) -> None:
            async with slots:
                client = AsyncSurge(base_url=run.surge_url, http_client=http)
                await client.auth.sign_up(account["email"], account["password"])

        await asyncio.gather(*(sign_up(a) for a in [*accounts, admin]))
    connection = await asyncpg.connect(driver_dsn(run.database_url))
    try:
        await connection.execute(
            "UPDATE user_account SET tier = 'plus' WHERE email = ANY($1::text[])",
            [a["email"] for a in accounts],
        )
        await connection.execute("UPDATE user_account SET tier = 'admin' WHERE email = $1", admin["email"])
    finally:
        await connection.close()
    run.admin = admin
    return accounts


# --- sampling ---
class CpuMeter:
    """CPU used by each part of the run, in cores, since the previous reading: everything shares this
    machine's cores, so a slow turn is often a starved process rather than a full queue."""

    def __init__(self, run: Run) -> None:
        self.run = run
        # Each process seen, with its part of the run (None: not ours), found once: a process's parents
        # do not change, and walking them for every process every two seconds cost the orchestrator CPU
        # on the machine it measures.
        self.processes: dict[int, tuple[psutil.Process, str | None]] = {}

    def _group(self, process: psutil.Process) -> str | None:
        run = self.run
        try:
            name = process.name()
            lineage = {process.pid, *(parent.pid for parent in process.parents())}
        except psutil.Error:
            return None
        if run.surge is not None and run.surge.pid in lineage:
            return "surge"
        if run.locust is not None and run.locust.pid in lineage:
            return "locust"
        if any(sim.pid in lineage for sim in run.sims):
            return "sims"
        if process.pid == os.getpid():
            return "orchestrator"
        if name.startswith("postgres"):
            return "postgres"
        if name.startswith("redis"):
            return "redis"
        return None

    def read(self) -> dict[str, float]:
        used: Counter[str] = Counter()
        for process in psutil.process_iter():
            cached = self.processes.get(process.pid)
            if cached is None or cached[0] != process:  # new, or its pid reused (psutil compares start times)
                cached = self.processes[process.pid] = (process, self._group(process))
            known, group = cached
            if group is None:
                continue
            with contextlib.suppress(psutil.Error):
                used[group] += known.cpu_percent() / 100  # the first reading of a process is 0.0
        used["machine"] = psutil.cpu_percent() / 100 * (psutil.cpu_count() or 1)
        return {group: round(cores, 3) for group, cores in used.items()}


METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metric_sum(text: str, *names: str) -> float | None:
    """The sum over labels of the first of ``names`` found in a Prometheus text page."""
    for name in names:
        total, found = 0.0, False
        for line in text.splitlines():
            match = METRIC_LINE.match(line)
            if match and match.group(1) == name:
                with contextlib.suppress(ValueError):
                    total += float(match.group(3))
                    found = True
        if found:
            return total
    return None


def metric_max(text: str, name: str) -> float | None:
    values = []
    for line in text.splitlines():
        match = METRIC_LINE.match(line)
        if match and match.group(1) == name:
            with contextlib.suppress(ValueError):
                values.append(float(match.group(3)))
    return max(values) if values else None


async def sample(http: httpx.AsyncClient, run: Run, admin: AsyncSurge) -> dict[str, Any]:
    now = time.time()
    row: dict[str, Any] = {"t": now}
    shares, queue, prompt, cached = [], 0, 0.0, 0.0
    complete = True
    for url in run.workers:
        try:
            ranks = (await http.get(f"{url}/get_load")).json()
            running = sum(rank["num_reqs"] - rank["num_waiting_reqs"] for rank in ranks)
            tokens = sum(rank["num_tokens"] for rank in ranks)
            queue += sum(rank["num_waiting_reqs"] for rank in ranks)
            shares.append(min(1.0, max(running / run.args.max_running, tokens / run.args.kv_tokens)))
            text = (await http.get(f"{url}/metrics")).text
            prompt += metric_sum(text, "sglang:prompt_tokens_total", "sglang:prompt_tokens") or 0.0
            cached += metric_sum(text, "sglang:cached_tokens_total", "sglang:cached_tokens") or 0.0
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            complete = False
    row["busy"] = sum(shares) / len(shares) if shares else None
    row["fleet_queue"] = queue
    if complete:
        row["prompt_tokens"], row["cached_tokens"] = prompt, cached
    # The degrade level and queue: from /v1/admin/fleet and /metrics (two processes answer /metrics by
    # turns, so it is read twice; the larger level counts).
    levels: list[float] = []
    queues: list[float] = []
    with contextlib.suppress(SurgeError):
        admission = (await admin.admin.fleet()).get("admission") or {}
        if isinstance(admission.get("degrade_level"), int | float):
            levels.append(float(admission["degrade_level"]))
        # One replica's view of its share of the fleet: slots, turns holding them, turns waiting.
        replica_queue = (admission.get("queues") or {}).get(MODEL) or {}
        row["replica_slots"] = {key: replica_queue.get(key) for key in ("slots", "holding", "waiting")}
    for _ in range(2):
        with contextlib.suppress(SurgeError):
            text = await admin.health.metrics()
            level = metric_max(text, "surge_degrade_level")
            if level is not None:
                levels.append(level)
            length = metric_sum(text, "surge_queue_length")
            if length is not None:
                queues.append(length)
    row["degrade_level"] = max(levels) if levels else None
    row["queue"] = max(queues) if queues else None
    return row


async def sampler(run: Run, stop: asyncio.Event) -> None:
    meter = CpuMeter(run)
    # No retries: a sample that fails is left out rather than taken late. The admin's session refreshes
    # itself (the run outlasts an access token).
    async with (
        httpx.AsyncClient(timeout=5) as http,
        AsyncSurge(base_url=run.surge_url, http_client=http, max_retries=0) as admin,
    ):
        await admin.auth.log_in(run.admin["email"], run.admin["password"])
        while not stop.is_set():
            started = time.monotonic()
            row = await sample(http, run, admin)
            row["cpu"] = await asyncio.to_thread(meter.read)
            if run.locust is not None:
                row["locust_running"] = run.locust.poll() is None
            run.samples.append(row)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), max(0.1, SAMPLE_INTERVAL_S - (time.monotonic() - started))
                )


# --- the load ---
def locust_command(run: Run, accounts_file: Path, records: Path) -> list[str]:
    args = run.args
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
        "--headless", "--host", run.surge_url, "--only-summary", "--loglevel", "WARNING",
        "--exit-code-on-error", "0", "--csv", str(run.directory / "locust"),
        "--shape", "app_store_spike", "--shape-duration", str(args.duration),
        "--base-users", str(args.base_users), "--peak", str(args.peak),
        "--warmup", str(args.warmup), "--cooldown", str(args.cooldown),
        "--time-compression", str(args.time_compression), "--paid-accounts", str(accounts_file),
        "--record-dir", str(records), "--workload-seed", str(args.seed),
    ]  # fmt: skip
    if args.locust_processes > 1:
        command += ["--processes", str(args.locust_processes)]
    return command


async def drain(run: Run) -> int:
    """Wait until no answer is queued or streaming (or the bound passes); returns those left."""
    deadline = time.monotonic() + run.args.drain_timeout
    while True:
        left = await in_flight(run.database_url)
        if left == 0 or time.monotonic() > deadline:
            return left
        await asyncio.sleep(2.0)


def spawn(
    command: list[str], log_file: Path, *, env: dict[str, str] | None = None, new_session: bool = False
) -> subprocess.Popen[bytes]:
    with log_file.open("ab") as output:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=output, start_new_session=new_session
        )


def stop_process(
    process: subprocess.Popen[bytes] | None, *, group: bool = False, timeout: float = 20
) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
        process.wait()


# --- the whole run ---
async def execute(run: Run) -> dict[str, Any]:
    args = run.args
    schedule = ShapeSchedule(
        shape="app_store_spike",
        base_users=args.base_users,
        duration_s=args.duration,
        warmup_s=args.warmup,
        cooldown_s=args.cooldown,
        peak=args.peak,
    )
    started_wall = time.time()
    log(f"database, Redis db {args.redis_db}, {args.fleet_workers} sims, Surge x{args.surge_workers}")
    await create_database(run)
    flush_redis(run)
    await asyncio.to_thread(start_fleet, run)
    await start_surge(run)
    peak_paid = math.ceil(args.base_users * args.peak / 10) + 5
    accounts = await create_accounts(run, peak_paid)
    records_dir = run.directory / "records"
    shutil.rmtree(records_dir, ignore_errors=True)
    stop = asyncio.Event()
    sampling = asyncio.create_task(sampler(run, stop))
    with tempfile.TemporaryDirectory() as secrets:
        accounts_file = Path(secrets) / "paid.json"
        accounts_file.write_text(json.dumps(accounts))
        log(
            f"Locust: app_store_spike over {args.duration:.0f} s (+{args.warmup:.0f} s warm-up, "
            f"+{args.cooldown:.0f} s recovery), {args.base_users} to "
            f"{round(args.base_users * args.peak)} users"
        )
        run.locust = spawn(locust_command(run, accounts_file, records_dir), run.directory / "locust.log")
        limit = time.monotonic() + schedule.total_s + 120
        while run.locust.poll() is None and time.monotonic() < limit:
            await asyncio.sleep(1.0)
            for process in [*run.sims, run.surge]:
                if process is not None and process.poll() is not None:
                    run.problems.append(f"a process died during the run (pid {process.pid})")
            if run.problems:
                break
        if run.locust.poll() is None:
            run.problems.append("Locust did not finish in time")
            stop_process(run.locust)
        elif run.locust.returncode != 0:
            run.problems.append(f"Locust exited with {run.locust.returncode} (see locust.log)")
    log(f"load over; draining in-flight turns (at most {args.drain_timeout:.0f} s)")
    left = await drain(run)
    await asyncio.sleep(2 * SAMPLE_INTERVAL_S)  # a last look at the level once the fleet is idle
    stop.set()
    await sampling
    records = list(load_records(records_dir))
    log(f"{left} turns still in flight after the drain; auditing the database")
    audit_result = await audit(run.database_url, records)
    attach_answer_times(turns_of(records), await answer_times(run.database_url))
    return build_result(run, schedule, records, audit_result.to_dict(), started_wall)


def build_result(
    run: Run,
    schedule: ShapeSchedule,
    records: list[dict[str, Any]],
    audit_result: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    args = run.args
    start = next((r["t"] for r in records if r.get("type") == "start"), None)
    t0 = start if start is not None else (min((r["t"] for r in records), default=started))
    users = sorted((r["t"], r["users"]) for r in records if r.get("type") == "users")
    samples = []
    for row in run.samples:
        known = [u for t, u in users if t <= row["t"]]
        ended = row.get("locust_running") is False
        samples.append({**row, "users": 0 if ended else (known[-1] if known else None)})
    turns = turns_of(records)
    windows = phase_windows(schedule.phases(), t0)
    end = max([t0 + schedule.total_s] + [s["t"] for s in samples])
    windows.append(("drain", t0 + schedule.total_s, end + 1e-3))
    phases = {name: summarise(turns, samples, lo, hi) for name, lo, hi in windows}
    phases["total"] = summarise(turns, samples, t0 - 1e-3, end + 1e-3)
    rows = timeseries(records, samples, t0)
    signups = Counter(r.get("outcome") for r in records if r.get("type") == "signup")
    result: dict[str, Any] = {
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "wall_s": time.time() - started,
        "parameters": {k: v for k, v in vars(args).items() if k not in ("report_dir",)},
        "phases": phases,
        "phase_windows": [(name, lo - t0, hi - t0) for name, lo, hi in windows],
        "t0": t0,
        "audit": audit_result,
        "signups": dict(signups),
        "problems": run.problems,
        "timeseries": rows,
        "samples": samples,
    }
    result["checks"] = checks(phases, audit_result, records, samples)
    result["surge_errors_logged"] = surge_errors(run.directory / "surge.log")
    if phases["total"]["served"] + phases["total"]["queued_then_served"] + phases["total"]["degraded"] == 0:
        run.problems.append("no turn was served")
    return result


def surge_errors(path: Path) -> dict[str, int]:
    """Error lines Surge logged, by message (diagnostics: a bug the load surfaced shows up here)."""
    found: Counter[str] = Counter()
    with contextlib.suppress(OSError), path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith("{") and '"level": "error"' in line:
                with contextlib.suppress(ValueError):
                    found[str(json.loads(line).get("msg"))] += 1
    return dict(found.most_common(10))


def log(message: str) -> None:
    print(f"[spike] {message}", file=sys.stderr, flush=True)


def write_report(run: Run, result: dict[str, Any]) -> None:
    directory = run.directory
    try:
        result["charts"] = charts(result["timeseries"], result["phase_windows"], directory)
    except Exception as exc:  # a report without charts is still a report
        run.problems.append(f"charts failed: {exc!r}")
        result["charts"] = []
    (directory / "report.json").write_text(json.dumps(result, indent=1, default=str))
    (directory / "report.md").write_text(markdown(result))


async def main_async(args: argparse.Namespace, directory: Path) -> int:
    run = Run(args=args, directory=directory)
    result: dict[str, Any] | None = None
    try:
        result = await execute(run)
    except (
        RuntimeError,
        OSError,
        asyncpg.PostgresError,
        redis.RedisError,
        httpx.HTTPError,
        SurgeError,
    ) as exc:
        run.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        stop_process(run.locust)
        stop_process(run.surge, group=True, timeout=30)
        for process in run.sims:
            stop_process(process)
        with contextlib.suppress(Exception):
            await drop_database(run)
        with contextlib.suppress(Exception):
            if run.redis_url:
                redis.Redis.from_url(run.redis_url).flushdb()
    if result is None:
        print("Spike: BROKEN RUN\n  - " + "\n  - ".join(run.problems), file=sys.stderr)
        return 1
    result["problems"] = run.problems
    write_report(run, result)
    print("\nSpike (WORKLOAD.md benchmark 3)")
    print(f"report: {directory / 'report.md'}\n")
    print(table(result["phases"]))
    print()
    failed_gate = False
    for check in result["checks"]:
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[check["passed"]]
        gates = check["gates"] or args.strict
        print(f"  {mark}  {check['name']}{'' if gates else ' (reported only)'}: {check['detail']}")
        failed_gate |= check["passed"] is False and gates
    for message, count in result["surge_errors_logged"].items():
        print(f"  note: Surge logged {count}x error {message!r} (see {directory / 'surge.log'})")
    if run.problems:
        print("\nbroken run:\n  - " + "\n  - ".join(run.problems))
    return 1 if run.problems or failed_gate else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=150.0, help="seconds of the spike shape")
    parser.add_argument(
        "--warmup",
        type=float,
        default=60.0,
        help="seconds at the baseline before the shape (enough turns for a p99 of the time before the spike)",
    )
    parser.add_argument("--cooldown", type=float, default=30.0, help="seconds back at the baseline after it")
    parser.add_argument(
        "--base-users", type=int, default=10, help="Locust users at the baseline (9 free : 1 paid)"
    )
    parser.add_argument("--peak", type=float, default=30.0, help="plateau multiplier")
    parser.add_argument("--fleet-workers", type=int, default=2, help="simulated SGLang workers")
    parser.add_argument("--max-running", type=int, default=16, help="running requests per worker")
    parser.add_argument("--kv-tokens", type=int, default=100_000, help="KV cache tokens per worker")
    parser.add_argument("--prefill-tokens-per-s", type=float, default=20_000.0)
    parser.add_argument("--speedup", type=float, default=10.0, help="simulator speed-up")
    parser.add_argument(
        "--time-compression",
        type=float,
        default=None,
        help="think/away times divided by this (default: --speedup)",
    )
    parser.add_argument(
        "--max-queue-wait-s",
        type=float,
        default=None,
        help="SURGE_ADMISSION_MAX_QUEUE_WAIT_S (default 60 s compressed)",
    )
    parser.add_argument(
        "--no-priority-scheduling",
        action="store_true",
        help="workers without --enable-priority-scheduling: paying turns wait in FCFS order like any other",
    )
    parser.add_argument("--surge-workers", type=int, default=2, help="backend processes")
    parser.add_argument("--locust-processes", type=int, default=1)
    parser.add_argument("--redis-db", type=int, default=13, help="Redis database index (flushed)")
    parser.add_argument(
        "--drain-timeout", type=float, default=180.0, help="most seconds to wait for in-flight turns"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strict", action="store_true", help="performance checks fail the exit code too")
    parser.add_argument("--report-dir", default="spike-report")
    args = parser.parse_args()
    if args.time_compression is None:
        args.time_compression = args.speedup
    if args.max_queue_wait_s is None:
        args.max_queue_wait_s = max(5.0, round(60.0 / args.time_compression, 1))
    directory = Path(args.report_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for stale in ("surge.log", "locust.log", "report.md", "report.json"):
        (directory / stale).unlink(missing_ok=True)
    raise SystemExit(asyncio.run(main_async(args, directory)))


if __name__ == "__main__":
    main()
