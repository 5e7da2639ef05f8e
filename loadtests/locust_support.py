"""What the Locust users need that is not Locust: SSE parsing, turn outcomes, shape schedules, records.

Kept free of ``import locust`` (which monkey-patches the standard library with gevent) so that the
spike orchestrator, its report and the tests can import it in an ordinary process.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

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


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: dict[str, Any]
    seq: int | None = None


@dataclass
class SseParser:
    """Server-Sent Events, one line at a time (without its newline); comments (``: ping``) are skipped."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: int | None = None

    def feed(self, line: str | bytes) -> SseEvent | None:
        if isinstance(line, bytes):
            line = line.decode("utf-8")
        line = line.rstrip("\r")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and value.strip().isdigit():
            self._id = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._data and not self._event:
            return None
        raw = "\n".join(self._data)
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {"_raw": raw}
        event = SseEvent(
            self._event or "message", data if isinstance(data, dict) else {"_raw": data}, self._id
        )
        self._event, self._data, self._id = "", [], None
        return event


@dataclass
class TurnObservation:
    """Everything one client saw of one turn: the send's HTTP answer, then the events of its stream."""

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

    def on_event(self, event: SseEvent, elapsed_s: float) -> None:
        if event.seq is not None:
            self.last_seq = max(self.last_seq, event.seq)
        if event.event == "turn":
            self.turn_seen = True
            self.user_message_id = (event.data.get("user_message") or {}).get("id")
            self.assistant_message_id = (event.data.get("assistant_message") or {}).get("id")
        elif event.event == "queued":
            self.queued = True
        elif event.event == "degraded":
            self.degraded = True
        elif event.event in ("reasoning", "content"):
            if self.first_token_s is None:
                self.first_token_s = elapsed_s
        elif event.event == "done":
            self.terminal = "done"
            self.done_status = (event.data.get("message") or {}).get("status")
            self.last_token_s = elapsed_s
        elif event.event == "error":
            self.terminal = "error"
            self.code = event.data.get("code")
            self.body_retry_after = _number(event.data.get("retry_after_s"))
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
