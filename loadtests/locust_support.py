"""What the Locust users need that is not Locust: turn outcomes, the SDK client's traffic as Locust
statistics and records, shape schedules, records.

Kept free of ``import locust`` (which monkey-patches the standard library with gevent) so that the
spike orchestrator, its report and the tests can import it in an ordinary process.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

import httpx
from surge import (
    ContentEvent,
    DegradedEvent,
    DoneEvent,
    ErrorEvent,
    QueuedEvent,
    ReasoningEvent,
    StreamEvent,
    TurnEvent,
)

from loadtests.shapes import SHAPES, app_store_spike, push_storm

# --- turn outcomes ---
SERVED = "served"
QUEUED = "queued_then_served"
DEGRADED = "degraded"
SHED = "shed"
ERROR = "error"
OUTCOMES = (SERVED, QUEUED, DEGRADED, SHED, ERROR)
# Not outcomes the client can see: the phone went to sleep and never came back (the server finishes
# the turn alone; the audit reads how it ended), or the load shape stopped the Locust user mid-turn.
UNATTENDED = "unattended"
ABANDONED = "abandoned"

# Send-time refusals that are load shedding, not errors (API.md: 429/503 always carry Retry-After).
SHED_CODES = {"overloaded", "rate_limited", "quota_exceeded", "upstream_unavailable"}


@dataclass
class TurnObservation:
    """Everything one client saw of one attempt at a turn: the send's HTTP answer, then the events of
    its stream (typed, from the SDK)."""

    status: int | None = None  # HTTP status of the send
    retry_after: float | None = None  # its Retry-After header
    code: str | None = None  # error code of a refused send, or of the `error` event
    body_retry_after: float | None = None  # retry_after_s in the error body or the `error` event
    transport_error: str | None = None  # connection failed, reset, timed out
    turn_seen: bool = False
    queued: bool = False
    degraded: bool = False
    terminal: str | None = None  # "done" | "error"
    done_status: str | None = None  # the final message's status
    last_seq: int = 0
    first_token_s: float | None = None  # from sending to the first reasoning/content event
    last_token_s: float | None = None  # from sending to the terminal event
    user_message_id: str | None = None
    assistant_message_id: str | None = None
    attempt: int = 1  # of the message: sends and regenerations, the SDK's own retries included
    sent: float = 0.0  # time.monotonic() when this attempt's request went out
    sent_wall: float = 0.0  # the same, wall clock (what the records say)
    settled: bool = False  # classified and reported

    def on_event(self, event: StreamEvent, elapsed_s: float) -> None:
        if event.seq is not None:
            self.last_seq = max(self.last_seq, event.seq)
        if isinstance(event, TurnEvent):
            self.turn_seen = True
            self.user_message_id = event.user_message.id
            self.assistant_message_id = event.assistant_message.id
        elif isinstance(event, QueuedEvent):
            self.queued = True
        elif isinstance(event, DegradedEvent):
            self.degraded = True
        elif isinstance(event, ReasoningEvent | ContentEvent):
            if self.first_token_s is None:
                self.first_token_s = elapsed_s
        elif isinstance(event, DoneEvent):
            self.terminal = "done"
            self.done_status = event.message.status
            self.last_token_s = elapsed_s
        elif isinstance(event, ErrorEvent):
            self.terminal = "error"
            self.code = event.code
            self.body_retry_after = _number(event.retry_after_s)
            self.last_token_s = elapsed_s

    @property
    def acknowledged(self) -> bool:
        """The server said it has the message: a 2xx whose `turn` event named the user message."""
        return self.status is not None and 200 <= self.status < 300 and self.user_message_id is not None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_retry_after(header: str | None) -> float | None:
    return _number(header.strip()) if header else None


def classify(obs: TurnObservation) -> tuple[str, str]:
    """The turn's outcome (one of OUTCOMES) and a short reason.

    shed: refused at send time with 429/503 and Retry-After, or failed in the queue with an `error`
    event `overloaded` carrying retry_after_s. error: anything else that did not end in a complete
    answer (5xx without Retry-After, a broken or unfinished stream, another error code)."""
    if obs.transport_error is not None and not obs.turn_seen:
        return ERROR, f"transport: {obs.transport_error}"
    if obs.status is None:
        return ERROR, "no response"
    if obs.status in (429, 503):
        if obs.retry_after is not None:
            return SHED, f"{obs.status} {obs.code or '?'}"
        return ERROR, f"{obs.status} {obs.code or '?'} without Retry-After"
    if not 200 <= obs.status < 300:
        return ERROR, f"{obs.status} {obs.code or '?'}"
    if obs.terminal == "error":
        if obs.code == "overloaded" and obs.body_retry_after is not None:
            return SHED, "error event overloaded"
        return ERROR, f"error event {obs.code or '?'}"
    if obs.terminal != "done":
        if obs.transport_error is not None:
            return ERROR, f"stream broken: {obs.transport_error}"
        return ERROR, "stream ended without done or error"
    if obs.done_status != "complete":
        return ERROR, f"done with status {obs.done_status}"
    if obs.degraded:
        return DEGRADED, "degraded event"
    if obs.queued:
        return QUEUED, "queued event"
    return SERVED, "served"


# --- the SDK client's traffic, as Locust statistics and records ---
_IDS = re.compile(r"(/v1/(?:conversations|messages|shares|devices)/)[^/]+")
_SENDS = re.compile(r"^/v1/(?:conversations/[^/]+/messages|messages/[^/]+/regenerate)$")


def route_name(path: str) -> str:
    """Locust's name for a request: its path with the ids as ``[id]`` (``/v1/messages/[id]/events``)."""
    return _IDS.sub(r"\1[id]", path)


def is_send(request: httpx.Request) -> bool:
    """A POST that sends a message or asks for another answer: one attempt at a turn."""
    return request.method == "POST" and _SENDS.match(request.url.path) is not None


def failure_of(
    request: httpx.Request, status: int, retry_after: float | None, code: str | None
) -> str | None:
    """Why Locust should count an answer as failed, or None: 2xx and 3xx are fine, and so are the answers
    Surge gives by design under load (429/503 with Retry-After) and a 401 to a request that carried a
    token (the SDK refreshes it and sends again)."""
    if status < 400 or (status in (429, 503) and retry_after is not None):
        return None
    if status == 401 and "authorization" in request.headers:
        return None
    return f"{status} {code or '?'}"


def error_fields(response: httpx.Response) -> tuple[str | None, float | None]:
    """The ``code`` and ``retry_after_s`` of an error answer's body (``{"error": {...}}``), if any."""
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        return None, None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    code = error.get("code")
    return (str(code) if code is not None else None), _number(error.get("retry_after_s"))


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


class ExchangeListener(Protocol):
    def sending(self, request: httpx.Request) -> None: ...

    def answered(self, request: httpx.Request, response: httpx.Response, elapsed_s: float) -> None: ...

    def failed(self, request: httpx.Request, error: Exception, elapsed_s: float) -> None: ...


class ReportingTransport(httpx.BaseTransport):
    """The transport under a Locust user's ``Surge`` client: it tells a listener about every exchange the
    SDK makes (each retry, each reconnection of a stream), timed to the response's headers as Locust
    times its own streamed requests. An error answer's small body is read here, for its ``code``."""

    def __init__(self, listener: ExchangeListener, inner: httpx.BaseTransport | None = None) -> None:
        self.listener = listener
        # One TLS context for every user: building one loads the CA bundle (~40 ms of CPU), which
        # hundreds of users spawning in a ramp would take from the load generator.
        self.inner = inner or httpx.HTTPTransport(verify=_tls_context())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.listener.sending(request)
        started = time.perf_counter()
        try:
            response = self.inner.handle_request(request)
            if response.status_code >= 400:
                response.read()
        except Exception as exc:
            self.listener.failed(request, exc, time.perf_counter() - started)
            raise
        self.listener.answered(request, response, time.perf_counter() - started)
        return response

    def close(self) -> None:
        self.inner.close()


class SendAttempts:
    """The sends of one message as the SDK makes them, its own retries included: each is an attempt with
    its own observation and clock (the report counts attempts: a message shed twice and then served is
    two shed and one served). An attempt that was refused, or whose connection broke before its ``turn``
    event, is settled (classified and reported) as soon as it is over; the accepted one is settled by the
    caller once its answer ends. A 401 is not an attempt: the SDK refreshes its token and sends again."""

    def __init__(self, report: Callable[[TurnObservation], None]) -> None:
        self._report = report
        self.count = 0  # attempts of this message so far (across its sends and regenerations)
        self.current: TurnObservation | None = None

    def start(self) -> None:
        previous = self.current
        if previous is not None and not previous.settled and not previous.turn_seen:
            # Sent again with the same key: the connection of the last attempt broke before its turn.
            previous.transport_error = previous.transport_error or "broken before the turn event"
        self.settle()
        self.count += 1
        self.current = TurnObservation(attempt=self.count, sent=time.monotonic(), sent_wall=time.time())

    def answered(self, response: httpx.Response) -> None:
        obs = self.current
        if obs is None:
            return
        if response.status_code == 401:
            self.current, self.count = None, self.count - 1
            return
        obs.status = response.status_code
        if response.is_error:
            obs.retry_after = parse_retry_after(response.headers.get("Retry-After"))
            obs.code, obs.body_retry_after = error_fields(response)
            self.settle()

    def failed(self, error: Exception) -> None:
        if self.current is not None:
            self.current.transport_error = type(error).__name__
            self.settle()

    def settle(self) -> None:
        obs = self.current
        if obs is not None and not obs.settled:
            obs.settled = True
            self._report(obs)


# fire(request type, name, milliseconds, failure message or None): one Locust request event.
Fire = Callable[[str, str, float, str | None], None]


class TrafficLog:
    """A Locust user's ``ExchangeListener``: every exchange becomes a Locust request (named by route),
    every failed 5xx an ``http_error`` record, every sign-up attempt a ``signup`` record and ``SIGNUP``
    metric, and every send of the message in ``attempts`` an attempt of it."""

    def __init__(self, recorder: Recorder, fire: Fire) -> None:
        self.recorder = recorder
        self.fire = fire
        self.name: str | None = (
            None  # the name of the requests of the next calls (a replay), if not the route
        )
        self.attempts: SendAttempts | None = None  # the message being sent, while it is

    def sending(self, request: httpx.Request) -> None:
        if self.attempts is not None and is_send(request):
            self.attempts.start()

    def answered(self, request: httpx.Request, response: httpx.Response, elapsed_s: float) -> None:
        status, name = response.status_code, self.name or route_name(request.url.path)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        code = error_fields(response)[0] if response.is_error else None
        failure = failure_of(request, status, retry_after, code)
        self.fire(request.method, name, elapsed_s * 1000, failure)
        if failure is not None and status >= 500:
            self.recorder.write(
                "http_error", t=time.time(), route=f"{request.method} {name}", status=status,
                retry_after=retry_after, code=code,
            )  # fmt: skip
        if request.method == "POST" and request.url.path == "/v1/auth/signup":
            self._signup(status, retry_after, code, failure, elapsed_s)
        if self.attempts is not None and is_send(request):
            self.attempts.answered(response)

    def failed(self, request: httpx.Request, error: Exception, elapsed_s: float) -> None:
        name = self.name or route_name(request.url.path)
        self.fire(request.method, name, elapsed_s * 1000, type(error).__name__)
        if self.attempts is not None and is_send(request):
            self.attempts.failed(error)

    def _signup(
        self, status: int, retry_after: float | None, code: str | None, failure: str | None, elapsed_s: float
    ) -> None:
        now = time.time()
        if status == 201:
            self.recorder.write("signup", t=now, outcome="ok")
            self.fire("SIGNUP", "ok", elapsed_s * 1000, None)
        elif failure is None:  # refused with Retry-After: expected under overload, and retried
            outcome = code or str(status)
            self.recorder.write("signup", t=now, outcome=outcome, retry_after=retry_after)
            self.fire("SIGNUP", outcome, elapsed_s * 1000, None)
        else:
            self.recorder.write("signup", t=now, outcome="error", status=status)


# --- load shapes over time ---
PHASES_SPIKE = ("baseline", "ramp", "plateau", "decay", "recovery")


@dataclass(frozen=True, slots=True)
class ShapeSchedule:
    """How many users run ``t`` seconds into a test: ``warmup_s`` at the base, then ``shape`` over
    ``duration_s`` (users = base x multiplier), then ``cooldown_s`` back at the base, then stop.

    ``peak`` is app_store_spike's plateau (it settles at half of it) and push_storm's crowd; diurnal
    runs from 0.2 x base (night) to base (midday)."""

    shape: str = "app_store_spike"
    base_users: int = 10
    duration_s: float = 180.0
    warmup_s: float = 0.0
    cooldown_s: float = 0.0
    peak: float = 30.0

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; one of {', '.join(SHAPES)}")
        if self.duration_s <= 0 or self.base_users < 1:
            raise ValueError("duration_s must be positive and base_users at least 1")

    @property
    def total_s(self) -> float:
        return self.warmup_s + self.duration_s + self.cooldown_s

    def multiplier(self, fraction: float) -> float:
        if self.shape == "app_store_spike":
            return app_store_spike(fraction, peak=self.peak, settle=self.peak / 2)
        if self.shape == "push_storm":
            return push_storm(fraction, crowd=self.peak)
        return SHAPES[self.shape](fraction)

    def users_at(self, t: float) -> int | None:
        """Users wanted ``t`` seconds in; None once the test is over."""
        if t < 0 or t >= self.total_s:
            return None
        if t < self.warmup_s or t >= self.warmup_s + self.duration_s:
            return self.base_users
        fraction = (t - self.warmup_s) / self.duration_s
        return max(1, round(self.base_users * self.multiplier(fraction)))

    def spawn_rate_at(self, t: float) -> float:
        """Users started or stopped per second: fast enough to follow the shape over the next second
        (a flash crowd arrives within it), never below 1."""
        now = self.users_at(t) or 0
        ahead = self.users_at(t + 1.0)
        change = abs((ahead if ahead is not None else now) - now)
        return float(max(1, change, self.base_users // 5))

    def tick(self, t: float) -> tuple[int, float] | None:
        users = self.users_at(t)
        return None if users is None else (users, self.spawn_rate_at(t))

    def phases(self) -> list[tuple[str, float, float]]:
        """(name, start s, end s) of the test's phases; app_store_spike has WORKLOAD.md's four plus the
        cool-down (``recovery``); other shapes have warmup / run / cooldown."""
        w, d = self.warmup_s, self.duration_s
        if self.shape == "app_store_spike":
            phases = [
                ("baseline", 0.0, w + 0.1 * d),
                ("ramp", w + 0.1 * d, w + 0.2 * d),
                ("plateau", w + 0.2 * d, w + 0.6 * d),
                ("decay", w + 0.6 * d, w + d),
            ]
        else:
            phases = [("warmup", 0.0, w), ("run", w, w + d)]
        phases.append(("recovery" if self.shape == "app_store_spike" else "cooldown", w + d, self.total_s))
        return [phase for phase in phases if phase[2] > phase[1]]


# --- what the Locust users write down ---
class Recorder:
    """Appends JSON lines to one file per process under ``directory`` (several Locust processes, one
    directory: none of them shares a file). A Recorder without a directory records nothing."""

    def __init__(self, directory: str | Path | None) -> None:
        self._file: TextIO | None = None
        if directory:
            path = Path(directory)
            path.mkdir(parents=True, exist_ok=True)
            name = f"records-{os.getpid()}-{uuid.uuid4().hex[:6]}.jsonl"
            self._file = (path / name).open("a", buffering=1, encoding="utf-8")

    def write(self, kind: str, **fields: Any) -> None:
        if self._file is not None:
            self._file.write(json.dumps({"type": kind, **fields}, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def load_records(directory: str | Path) -> Iterator[dict[str, Any]]:
    for path in sorted(Path(directory).glob("records-*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                # A process killed mid-line leaves a torn last line: skip it.
                if line.endswith("\n"):
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue


def load_accounts(path: str | Path) -> list[dict[str, str]]:
    """The paid accounts file the orchestrator writes: a JSON list of {"email", "password"}."""
    accounts = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(accounts, list) or not all("email" in a and "password" in a for a in accounts):
        raise ValueError(f"{path}: expected a JSON list of {{'email', 'password'}}")
    return accounts
