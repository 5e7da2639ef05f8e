"""``make chaos``: Surge's dependencies fail one at a time under load, and nothing is lost.

The rig is production-shaped: two Surge replicas on PostgreSQL + Redis behind a small TCP load balancer,
two simulated SGLang workers, a stand-in for FCM, and users streaming turns through the SDK (an
Idempotency-Key on every send, resuming by themselves when a stream breaks; a share of them never come
back for their answer and rely on its push). Each scenario injects one fault mid-run, heals it, lets the
turns drain, and audits:

- every acknowledged user message exists exactly once (no loss, no duplicate), every answer ended;
- every client stream ended with exactly one ``done``/``error``, and the text it streamed is the stored text;
- no 5xx answer but 503 with Retry-After;
- for the Redis restart: no turn failed while its worker stream was healthy;
- recovery: seconds from healing the fault until both replicas are ready and a turn streams end to end.

Scenarios: baseline; kill -9 a replica; restart PostgreSQL; restart Redis; kill -9 a worker mid-stream; a
worker that stalls; FCM answering 503 for a minute. The PostgreSQL and Redis it restarts are servers of its
own (``loadtests/private_services.py``), so it can run beside the test suite.

    uv run python -m loadtests.chaos [--users 20] [--only redis_restart ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from surge import AsyncSurge, ContentEvent, DoneEvent, ErrorEvent, ReasoningEvent, SurgeError, TurnEvent

from loadtests.database import create_postgres, fetch, migrate, postgres_url
from loadtests.fake_fcm import PROJECT, FakeFcm
from loadtests.private_services import PrivatePostgres, PrivateRedis
from loadtests.sglang_sim import SimConfig, free_port, start_subprocess, stop_subprocess
from loadtests.surge_server import BENCH_SETTINGS, wait_until_up

ROOT = Path(__file__).resolve().parents[1]
MODEL = "deepseek-v3.1"


# --- a load balancer: what sits in front of the replicas in production ---
class Balancer:
    """Round-robin TCP proxy over the replicas' ports; a replica that refuses is skipped."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.port = free_port()
        self._next = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        for _ in range(len(self.ports)):
            port = self.ports[self._next % len(self.ports)]
            self._next += 1
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                continue
        else:
            client_writer.close()
            return

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(client_reader, writer), pipe(reader, client_writer))


# --- the rig ---
@dataclass
class Replica:
    port: int
    process: asyncio.subprocess.Process | None = None


@dataclass
class Worker:
    config: SimConfig
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.port}"


class Rig:
    def __init__(self, directory: Path, users: int) -> None:
        self.directory = directory
        self.fcm = FakeFcm().start()
        self.workers = [
            Worker(SimConfig(port=free_port(), served_model_name=MODEL, chat_template="deepseek-v3.1",
                             reasoning_parser="deepseek-r1", enable_cache_report=True, sim_speedup=10.0))
            for _ in range(2)
        ]  # fmt: skip
        self.replicas = [Replica(free_port()) for _ in range(2)]
        self.balancer = Balancer([replica.port for replica in self.replicas])
        # Servers of the run's own: the scenarios stop and restart them.
        self.postgres = PrivatePostgres()
        self.redis = PrivateRedis()
        self.database = ""
        self.users = users
        self.prefix = f"surge-chaos-{uuid.uuid4().hex[:8]}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.balancer.port}"

    @property
    def database_url(self) -> str:
        return postgres_url(self.database, self.postgres.dsn)

    def env(self) -> dict[str, str]:
        models = [{"id": MODEL, "display_name": "chaos", "workers": [w.url for w in self.workers],
                   "max_output_tokens": 600}]  # fmt: skip
        return {
            **BENCH_SETTINGS,
            "SURGE_DATABASE_URL": self.database_url,
            "SURGE_REDIS_URL": self.redis.url,
            "SURGE_REDIS_KEY_PREFIX": self.prefix,
            "SURGE_MODELS": json.dumps(models),
            "SURGE_FCM_CREDENTIALS_FILE": str(self.fcm.service_account(self.directory)),
            "SURGE_FIREBASE_PROJECT_ID": PROJECT,
            "SURGE_FCM_SEND_URL": self.fcm.send_url,
            # Chaos, not throttling: every user comes from 127.0.0.1.
            "SURGE_ADMISSION_MESSAGES_PER_IP_PER_MIN": "100000",
            "SURGE_SIGNUP_PER_IP_PER_HOUR": "100000",
            "SURGE_LOGIN_PER_IP_PER_10MIN": "100000",
            # Unattended sends each open a conversation of their own, faster than a person would.
            "SURGE_ADMISSION_CONVERSATIONS_PER_USER_PER_MIN": "100000",
            # A dead replica's turns are settled within seconds, and retried pushes come back within 10 s.
            "SURGE_LEASE_TTL_S": "6",
            "SURGE_SWEEP_INTERVAL_S": "2",
            "SURGE_PUSH_RETRY_BASE_S": "2",
            "SURGE_PUSH_RETRY_MAX_S": "10",
            # With the back-off compressed, the attempts must still outlast the FCM outage, as the defaults'
            # 8 attempts from 5 s to 600 s (about 10 minutes) do.
            "SURGE_PUSH_MAX_ATTEMPTS": "20",
            "SURGE_PUSH_POLL_INTERVAL_S": "2",
            # A stalled worker is given up on (and another tried) after 8 s rather than 2 minutes.
            "SURGE_FIRST_TOKEN_TIMEOUT_S": "8",
            "SURGE_LOG_LEVEL": "WARNING",
        }

    async def start(self) -> None:
        await self.postgres.create()
        await self.redis.start()
        self.database = await create_postgres("surge_chaos", self.postgres.dsn)
        await migrate(self.database_url)
        for worker in self.workers:
            self.start_worker(worker)
        for replica in self.replicas:
            await self.start_replica(replica)
        await self.balancer.start()

    async def close(self) -> None:
        await self.balancer.close()
        for replica in self.replicas:
            await self.stop_replica(replica)
        for worker in self.workers:
            if worker.process is not None:
                stop_subprocess(worker.process)
        self.fcm.close()
        await self.redis.stop()
        await self.postgres.remove()

    def start_worker(self, worker: Worker) -> None:
        worker.process, _ = start_subprocess(worker.config)

    def kill_worker(self, worker: Worker) -> None:
        if worker.process is not None:
            worker.process.kill()
            worker.process.wait()
            worker.process = None

    async def start_replica(self, replica: Replica) -> None:
        log = (self.directory / f"surge-{replica.port}.log").open("ab")
        replica.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "backend.cli", "serve", cwd=ROOT,
            env={**os.environ, **self.env(), "SURGE_PORT": str(replica.port)}, stdout=log, stderr=log,
        )  # fmt: skip
        process = replica.process
        await wait_until_up(f"http://127.0.0.1:{replica.port}", lambda: process.returncode, ready=True)

    def kill_replica(self, replica: Replica) -> None:
        if replica.process is not None and replica.process.returncode is None:
            replica.process.send_signal(signal.SIGKILL)

    async def stop_replica(self, replica: Replica) -> None:
        if replica.process is not None and replica.process.returncode is None:
            replica.process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(replica.process.wait(), 20)
            if replica.process.returncode is None:
                replica.process.kill()
                await replica.process.wait()

    async def ready(self) -> bool:
        async with httpx.AsyncClient(timeout=3) as http:
            for replica in self.replicas:
                try:
                    if (await http.get(f"http://127.0.0.1:{replica.port}/readyz")).status_code != 200:
                        return False
                except httpx.HTTPError:
                    return False
        return True


# --- the users ---
@dataclass
class Stream:
    """One streamed turn as its user saw it."""

    key: str
    user_message_id: str | None = None
    answer_id: str | None = None
    content: str = ""
    reasoning: str = ""
    terminal: str | None = None  # done | error
    terminals: int = 0
    error: str | None = None  # the SDK gave up (after its retries): the status and code it reported


@dataclass
class Record:
    streams: list[Stream] = field(default_factory=list)
    unattended: list[str] = field(default_factory=list)  # answer ids of sends nobody followed
    statuses: list[tuple[int, bool]] = field(default_factory=list)  # (status, has Retry-After) of 5xx


async def user(rig: Rig, index: int, record: Record, stop: asyncio.Event) -> None:
    async def note(response: httpx.Response) -> None:
        if response.status_code >= 500:
            record.statuses.append((response.status_code, "retry-after" in response.headers))

    http = httpx.AsyncClient(timeout=httpx.Timeout(60, connect=10), event_hooks={"response": [note]})
    client = AsyncSurge(base_url=rig.url, http_client=http, max_retries=4)
    try:
        await client.auth.sign_up(f"chaos{index}-{uuid.uuid4().hex[:6]}@example.com", "chaos-password")
        await client.devices.register(platform="android", push_token=f"token-{index}-{uuid.uuid4().hex}")
        conversation = (await client.conversations.create()).id
        while not stop.is_set():
            if random.random() < 0.15:
                # In a conversation of its own: the next send here must not answer a turn still running.
                await unattended_turn(client, (await client.conversations.create()).id, record)
            else:
                await streamed_turn(client, conversation, record)
            await asyncio.sleep(random.uniform(0.2, 1.0))
    except SurgeError:
        pass  # set-up refused mid-fault: this user sits the scenario out
    finally:
        await http.aclose()


async def streamed_turn(client: AsyncSurge, conversation: str, record: Record) -> None:
    stream_record = Stream(key=uuid.uuid4().hex)
    record.streams.append(stream_record)
    question = f"Question {uuid.uuid4().hex[:8]}: why is the sky blue?"
    try:
        async with client.messages.stream(
            conversation, question, thinking=random.random() < 0.5, idempotency_key=stream_record.key
        ) as stream:
            async for event in stream:
                if isinstance(event, TurnEvent):
                    stream_record.user_message_id = event.user_message.id
                    stream_record.answer_id = event.assistant_message.id
                elif isinstance(event, ContentEvent):
                    stream_record.content += event.delta
                elif isinstance(event, ReasoningEvent):
                    stream_record.reasoning += event.delta
                elif isinstance(event, DoneEvent | ErrorEvent):
                    stream_record.terminal = event.type
                    stream_record.terminals += 1
    except SurgeError as exc:
        stream_record.error = (
            f"{getattr(exc, 'status_code', None)} {getattr(exc, 'code', type(exc).__name__)}"
        )


async def unattended_turn(client: AsyncSurge, conversation: str, record: Record) -> None:
    with contextlib.suppress(SurgeError):
        turn = await client.messages.send(conversation, "Tell me later.", idempotency_key=uuid.uuid4().hex)
        record.unattended.append(turn.assistant_message.id)


# --- the audit ---
def same_text(stream: Stream, row: tuple[Any, ...]) -> bool:
    """What the user read is what was stored (content, then reasoning)."""
    return (row[1], row[2]) == (stream.content, stream.reasoning)


async def audit(rig: Rig, record: Record, started: float) -> dict[str, Any]:
    url = rig.database_url
    acknowledged = [s for s in record.streams if s.user_message_id]
    counts = {
        str(row[0]): int(row[1])
        for row in await fetch(url, "SELECT id, count(*) FROM message WHERE role = 'user' GROUP BY id")
    }
    duplicates = await fetch(
        url,
        "SELECT count(*) FROM (SELECT conversation_id, parent_id, content FROM message WHERE role = 'user' "
        "GROUP BY conversation_id, parent_id, content HAVING count(*) > 1) d",
    )
    stored = {
        str(row[0]): row[1:]
        for row in await fetch(
            url,
            "SELECT id, status, content, coalesce(reasoning, ''), error_code FROM message "
            "WHERE role = 'assistant'",
        )
    }
    unfinished = [answer for answer, row in stored.items() if row[0] in ("queued", "streaming")]
    ended = [s for s in acknowledged if s.terminal]
    mismatched = [
        s.answer_id for s in ended if s.answer_id in stored and not same_text(s, stored[s.answer_id])
    ]
    failed = [s for s in ended if s.terminal == "error" and s.answer_id in stored]
    return {
        "acknowledged": len(acknowledged),
        "lost": sum(1 for s in acknowledged if counts.get(s.user_message_id or "", 0) == 0),
        "duplicated": sum(1 for s in acknowledged if counts.get(s.user_message_id or "", 0) > 1)
        + int(duplicates[0][0]),
        "unfinished_answers": len(unfinished),
        "streams": len(record.streams),
        "streams_without_an_end": sum(1 for s in acknowledged if s.terminal is None and s.error is None),
        "streams_with_two_ends": sum(1 for s in record.streams if s.terminals > 1),
        "sdk_gave_up": sum(1 for s in record.streams if s.error),
        "sdk_errors": sorted({s.error for s in record.streams if s.error}),
        "text_mismatches": len(mismatched),
        "failed_turns": len(failed),
        "failed_codes": sorted({str(stored[s.answer_id or ""][3]) for s in failed}),
        "bad_5xx": sum(1 for status, retry_after in record.statuses if status != 503 or not retry_after),
        "503s": sum(1 for status, _ in record.statuses if status == 503),
        "unattended": len(record.unattended),
    }


# --- the scenarios ---
@dataclass
class Scenario:
    name: str
    fault: str
    inject: Callable[[Rig], Awaitable[None]]
    heal: Callable[[Rig], Awaitable[None]]
    # The fault lasts this long before it is healed.
    hold_s: float = 3.0
    # Turns that may fail honestly while it lasts (a worker dying mid-stream) — else any failure counts.
    failures_allowed: bool = False


async def nothing(_rig: Rig) -> None:
    return None


async def kill_replica(rig: Rig) -> None:
    rig.kill_replica(rig.replicas[1])


async def restart_replica(rig: Rig) -> None:
    await rig.start_replica(rig.replicas[1])


async def stop_postgres(rig: Rig) -> None:
    await rig.postgres.stop()


async def start_postgres(rig: Rig) -> None:
    await rig.postgres.start()


async def stop_redis(rig: Rig) -> None:
    await rig.redis.stop()


async def start_redis(rig: Rig) -> None:
    await rig.redis.start()


async def kill_worker(rig: Rig) -> None:
    rig.kill_worker(rig.workers[1])


async def restart_worker(rig: Rig) -> None:
    rig.start_worker(rig.workers[1])


async def stall_worker(rig: Rig) -> None:
    async with httpx.AsyncClient() as http:
        await http.post(f"{rig.workers[0].url}/sim/faults", json={"stall_s": 30.0})


async def unstall_worker(rig: Rig) -> None:
    async with httpx.AsyncClient() as http:
        await http.post(f"{rig.workers[0].url}/sim/faults", json={"stall_s": 0.0})


async def fcm_down(rig: Rig) -> None:
    rig.fcm.unavailable_for(60)


SCENARIOS = [
    Scenario("baseline", "none", nothing, nothing, hold_s=0),
    Scenario("replica_kill", "kill -9 one of the two replicas, restart it 5 s later", kill_replica,
             restart_replica, hold_s=5, failures_allowed=True),
    Scenario("postgres_restart", "PostgreSQL stopped for 3 s", stop_postgres, start_postgres),
    Scenario("redis_restart", "Redis shut down (losing everything) for 3 s", stop_redis, start_redis),
    Scenario("worker_kill", "kill -9 one worker mid-stream, restart it 5 s later", kill_worker,
             restart_worker, hold_s=5, failures_allowed=True),
    Scenario("worker_stall", "one worker stalls every request for 20 s", stall_worker, unstall_worker,
             hold_s=20, failures_allowed=True),
    Scenario("fcm_503", "FCM answers 503 for 60 s", fcm_down, nothing, hold_s=0),
]  # fmt: skip


async def probe_turn(rig: Rig) -> bool:
    """A turn streamed end to end through the balancer."""
    async with AsyncSurge(base_url=rig.url, max_retries=0, timeout=30) as client:
        try:
            await client.auth.sign_up(f"probe-{uuid.uuid4().hex[:8]}@example.com", "chaos-password")
            conversation = (await client.conversations.create()).id
            async with client.messages.stream(conversation, "ping?") as stream:
                async for event in stream:
                    if isinstance(event, DoneEvent):
                        return event.message.status == "complete"
                    if isinstance(event, ErrorEvent):
                        return False
        except (SurgeError, httpx.HTTPError):
            return False
    return False


async def recovery_s(rig: Rig, healed_at: float, limit_s: float = 120) -> float | None:
    while time.monotonic() - healed_at < limit_s:
        if await rig.ready() and await probe_turn(rig):
            return round(time.monotonic() - healed_at, 1)
        await asyncio.sleep(0.5)
    return None


async def play(rig: Rig, scenario: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    print(f"[chaos] {scenario.name}: {scenario.fault}", file=sys.stderr)
    record, stop = Record(), asyncio.Event()
    started = time.monotonic()
    users = [asyncio.create_task(user(rig, index, record, stop)) for index in range(args.users)]
    await asyncio.sleep(args.warm_s)
    fcm_sent_before = len(rig.fcm.sent)
    await scenario.inject(rig)
    await asyncio.sleep(scenario.hold_s)
    await scenario.heal(rig)
    healed_at = time.monotonic()
    recovery = await recovery_s(rig, healed_at)
    await asyncio.sleep(args.settle_s)
    stop.set()
    await asyncio.gather(*users, return_exceptions=True)
    drained = await drain(rig)
    result = await audit(rig, record, started)
    if scenario.name == "fcm_503":
        result |= await push_audit(rig, fcm_sent_before)
    result |= {"scenario": scenario.name, "fault": scenario.fault, "recovery_s": recovery, "drained": drained,
               "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
    result["passed"] = passed(result, scenario)
    return result


async def push_audit(rig: Rig, sent_before: int, limit_s: float = 90) -> dict[str, Any]:
    """Pushes FCM refused are retried with back-off once it answers again: wait until nothing is left to
    push, then count how each delivery ended (none may have been given up on for the outage)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        waiting = await fetch(
            rig.database_url,
            "SELECT (SELECT count(*) FROM push_outbox) + "
            "(SELECT count(*) FROM push_delivery WHERE status = 'pending')",
        )
        if int(waiting[0][0]) == 0:
            break
        await asyncio.sleep(1)
    rows = await fetch(rig.database_url, "SELECT status, count(*) FROM push_delivery GROUP BY status")
    by_status = {str(status): int(count) for status, count in rows}
    return {
        "fcm_refused": rig.fcm.refused,
        "pushes_sent_after": len(rig.fcm.sent) - sent_before,
        "pushes_by_status": by_status,
        "pushes_left": int(waiting[0][0]),
    }


async def drain(rig: Rig, limit_s: float = 120) -> bool:
    """Wait until no answer is queued or streaming (dead replicas' turns are settled by the others)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        rows = await fetch(
            rig.database_url, "SELECT count(*) FROM message WHERE status IN ('queued', 'streaming')"
        )
        if int(rows[0][0]) == 0:
            return True
        await asyncio.sleep(1)
    return False


def passed(result: dict[str, Any], scenario: Scenario) -> bool:
    clean = (
        result["lost"] == 0
        and result["duplicated"] == 0
        and result["unfinished_answers"] == 0
        and result["streams_without_an_end"] == 0
        and result["streams_with_two_ends"] == 0
        and result["text_mismatches"] == 0
        and result["bad_5xx"] == 0
        and result["recovery_s"] is not None
    )
    if not scenario.failures_allowed:
        clean = clean and result["failed_turns"] == 0
    if scenario.name == "fcm_503":
        # Refused while FCM was down, every push is sent once it is back: none left, none given up on.
        pushes = result.get("pushes_by_status", {})
        clean = clean and result.get("fcm_refused", 0) > 0 and result.get("pushes_left", 1) == 0
        clean = clean and pushes.get("sent", 0) > 0 and pushes.get("failed", 0) == 0
    return clean


# --- the report ---
COLUMNS = [
    ("scenario", "scenario"), ("acknowledged", "acked"), ("lost", "lost"), ("duplicated", "dup"),
    ("unfinished_answers", "unfinished"), ("streams", "streams"), ("streams_without_an_end", "no end"),
    ("text_mismatches", "text != stored"), ("failed_turns", "failed"), ("sdk_gave_up", "gave up"),
    ("503s", "503s"), ("bad_5xx", "other 5xx"), ("recovery_s", "recovery s"), ("passed", "pass"),
]  # fmt: skip


def markdown(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "# `make chaos`",
        "",
        f"Two replicas on PostgreSQL + Redis behind a load balancer, two simulated workers (x10), a stand-in "
        f"for FCM, {args.users} users streaming turns through the SDK with Idempotency-Keys (15% of sends "
        f"unattended, for pushes). One fault per scenario; the audit after the turns drained.",
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(str(result.get(key, "")) for key, _ in COLUMNS) + " |" for result in results]
    lines += ["", "Faults:", ""]
    lines += [f"- `{r['scenario']}`: {r['fault']}; failed turns' codes: {r['failed_codes'] or 'none'}"
              + (f"; FCM refused {r['fcm_refused']} sends, pushes by status {r['pushes_by_status']}, "
                 f"{r['pushes_left']} left to push" if "pushes_by_status" in r else "")
              for r in results]  # fmt: skip
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    print(
        "make chaos starts a PostgreSQL and a Redis of its own on free ports (the scenarios restart them); "
        "the machine's servers are not touched",
        file=sys.stderr,
    )
    random.seed(args.seed)
    with tempfile.TemporaryDirectory() as directory:
        rig = Rig(Path(directory), args.users)
        results = []
        try:
            await rig.start()
            for scenario in SCENARIOS:
                if args.only and scenario.name not in args.only:
                    continue
                results.append(await play(rig, scenario, args))
                print(
                    f"[chaos] {scenario.name}: {'PASS' if results[-1]['passed'] else 'FAIL'}", file=sys.stderr
                )
        finally:
            await rig.close()
            if args.keep_logs:
                await asyncio.to_thread(keep_logs, Path(directory), args.json.parent)
    return results


def keep_logs(directory: Path, destination: Path) -> None:
    for log in directory.glob("*.log"):
        (destination / log.name).write_bytes(log.read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--warm-s", type=float, default=12.0, help="seconds of load before the fault")
    parser.add_argument("--settle-s", type=float, default=8.0, help="seconds of load after recovery")
    parser.add_argument("--only", nargs="*", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "chaos.json")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "results" / "chaos.md")
    parser.add_argument("--keep-logs", action="store_true", help="copy the replicas' logs beside the JSON")
    args = parser.parse_args()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = asyncio.run(main_async(args))
    report = markdown(results, args) + f"\nWall clock: {time.monotonic() - started:.0f} s.\n"
    parameters = vars(args) | {"json": str(args.json), "report": str(args.report)}
    args.json.write_text(json.dumps({"parameters": parameters, "results": results}, indent=2, default=str))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report)
    print(report)
    if not results or not all(result["passed"] for result in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
