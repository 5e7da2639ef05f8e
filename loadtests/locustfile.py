"""Locust users of WORKLOAD.md: people opening a chat app during an app-store spike.

Each Locust user is one phone. A free user signs up fresh (a ``503 signups_paused`` is counted and
retried after its Retry-After); a paid user logs in with an account from ``--paid-accounts`` (a JSON
list of {"email", "password"} whose tier the orchestrator set to ``plus`` in the database). Then, in a
loop, a *session* of the seeded workload model (loadtests/workload.py): open the app (``GET /v1/me``,
the conversation list, the conversation it continues), send a geometric number of turns with think
times, thinking on or off, sometimes put the phone away mid-answer (half of those come back and resume
with ``GET /v1/messages/{id}/events?after=<seq>``, half never do), sometimes rate an answer; then stay
away for a while. All waits are divided by ``--time-compression`` so that a run fits in minutes (use the
simulator's speed-up, so that answers shrink by the same factor).

Every turn streams (``stream: true``) with an Idempotency-Key. Its outcome is one of served,
queued_then_served, degraded, shed (429/503 with Retry-After, or an ``error`` event ``overloaded``)
and error; Retry-After is honoured before the same message is sent again (same key) or, after a
failure in the queue, regenerated. Custom Locust metrics: ``TTFT`` and ``TTLT`` (send to the first
reasoning/content event, and to the terminal event) named by tier, and ``TURN`` named
"<tier> <outcome>". With ``--record-dir`` each process also writes JSON lines (acknowledged turns with
their ids and keys, outcomes, sign-ups, user counts) for ``loadtests/spike.py``'s report and audit.

The load shape is ``SurgeShape``: ``--shape`` (steady, app_store_spike, diurnal, push_storm) over
``--shape-duration`` seconds from ``--base-users``, after ``--warmup`` and before ``--cooldown`` seconds
at the base. The four shapes are also classes of their own in ``loadtests/locust_shapes.py``.

Interactive (web UI on http://localhost:8089; the shape drives the users):

    uv run --frozen locust -f loadtests/locustfile.py --host http://127.0.0.1:8000

Headless, a three-minute spike, records for a report:

    uv run --frozen locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --headless \\
        --shape app_store_spike --shape-duration 180 --base-users 10 --time-compression 10 \\
        --paid-accounts paid.json --record-dir spike-records

Distributed (one master, N workers, on one machine or several; the master runs the shape and hands
out users, the workers run them; custom options go to the master and reach the workers):

    uv run --frozen locust -f loadtests/locustfile.py --master --headless --expect-workers 2 \\
        --host http://127.0.0.1:8000 --shape app_store_spike --paid-accounts paid.json
    uv run --frozen locust -f loadtests/locustfile.py --worker --master-host 127.0.0.1   # x2

or ``--processes 2`` on one machine. Each worker needs the paid accounts file at the same path, and
writes its own records file into ``--record-dir`` (collect them into one directory for a report).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import time
import uuid
from typing import Any

import gevent
from locust import HttpUser, constant, events, task
from locust.runners import WorkerRunner
from requests import RequestException

from loadtests.locust_shapes import SurgeShape
from loadtests.locust_support import (
    ABANDONED,
    ERROR,
    OUTCOMES,
    SHED,
    UNATTENDED,
    Recorder,
    SseEvent,
    SseParser,
    TurnObservation,
    classify,
    load_accounts,
    parse_retry_after,
)
from loadtests.shapes import SHAPES
from loadtests.workload import SessionPlan, TurnPlan, Workload, WorkloadConfig, lognormal

STREAM_TIMEOUT_S = 900.0  # a turn's stream that has not ended after this long is broken
PASSWORD = "spike-password"  # noqa: S105 (throwaway accounts of a load test)


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("Surge workload")
    group.add_argument("--shape", choices=sorted(SHAPES), default="app_store_spike", env_var="LOCUST_SHAPE")
    group.add_argument("--shape-duration", type=float, default=180.0, help="seconds the shape lasts")
    group.add_argument("--base-users", type=int, default=10, help="users at multiplier 1")
    group.add_argument("--peak", type=float, default=30.0, help="app_store_spike plateau / push_storm crowd")
    group.add_argument("--warmup", type=float, default=0.0, help="seconds at the base before the shape")
    group.add_argument("--cooldown", type=float, default=0.0, help="seconds at the base after the shape")
    group.add_argument(
        "--time-compression",
        type=float,
        default=10.0,
        help="think, background and away times divided by this",
    )
    group.add_argument(
        "--away-mean-s", type=float, default=120.0, help="mean time between a user's sessions (uncompressed)"
    )
    group.add_argument("--paid-accounts", default="", help="JSON list of plus accounts {email, password}")
    group.add_argument("--record-dir", default="", help="write JSON-line records here (one file per process)")
    group.add_argument("--workload-seed", type=int, default=1)
    group.add_argument("--p-feedback", type=float, default=0.1, help="share of answers rated")
    group.add_argument(
        "--p-replay", type=float, default=0.02, help="share of sends repeated with the same Idempotency-Key"
    )
    group.add_argument(
        "--max-send-attempts", type=int, default=3, help="sends of one message before giving up"
    )


# --- per process state ---
class _State:
    recorder: Recorder = Recorder(None)
    accounts: list[dict[str, str]] = []
    users = itertools.count()
    paid = itertools.count()


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    _State.recorder = Recorder(options.record_dir or None)
    if options.paid_accounts:
        _State.accounts = load_accounts(options.paid_accounts)


@events.test_start.add_listener
def _test_start(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    options = environment.parsed_options
    _State.recorder.write("start", t=time.time(), shape=vars(options).get("shape"))

    def sample_users() -> None:
        while True:
            runner = environment.runner
            _State.recorder.write(
                "users", t=time.time(), users=runner.user_count, classes=dict(runner.user_classes_count)
            )
            gevent.sleep(2.0)

    gevent.spawn(sample_users)


@events.quitting.add_listener
def _quitting(**_: Any) -> None:
    _State.recorder.close()


def fire(request_type: str, name: str, milliseconds: float, exception: Exception | None = None) -> None:
    events.request.fire(
        request_type=request_type,
        name=name,
        response_time=milliseconds,
        response_length=0,
        exception=exception,
        context={},
    )


class ShedError(Exception):
    """Locust's failure message for a turn that errored (shed turns are expected and not failures)."""


# --- the users ---
class ChatUser(HttpUser):
    abstract = True
    wait_time = constant(0)  # pacing lives in the session: think times, then time away
    paid = False

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.options = options
        self.compression = max(1e-6, float(options.time_compression))
        runner = self.environment.runner
        worker = getattr(runner, "worker_index", 0) or 0
        number = next(_State.users)
        seed = options.workload_seed * 1_000_003 + worker * 100_003 + number
        self.rng = random.Random(seed)
        self.workload = Workload(WorkloadConfig(seed=seed), users=1)
        self.conversations: list[str] = []
        self.tier = "paid" if self.paid else "free"
        self.access = ""
        self.refresh = ""
        self.credentials: dict[str, str] = {}
        self.sign_in()

    # --- accounts ---
    def sign_in(self) -> None:
        if self.paid and _State.accounts:
            worker = getattr(self.environment.runner, "worker_index", 0) or 0
            index = (next(_State.paid) + worker * 997) % len(_State.accounts)
            self.credentials = _State.accounts[index]
            self.login()
        else:
            self.sign_up()
        me = self.api("GET", "/v1/me", name="/v1/me")
        if me is not None:
            # Label by the tier the server says (a paid user without an accounts file is free).
            self.tier = me.get("tier", self.tier)

    def sign_up(self) -> None:
        email = f"free-{uuid.uuid4().hex[:12]}@spike.example"
        self.credentials = {"email": email, "password": PASSWORD}
        while True:
            started = time.monotonic()
            with self.client.post(
                "/v1/auth/signup", json=self.credentials, catch_response=True, name="/v1/auth/signup"
            ) as response:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                code = _error_code(response)
                elapsed = (time.monotonic() - started) * 1000
                if response.status_code == 201:
                    response.success()
                    self.take_session(response.json())
                    _State.recorder.write("signup", t=time.time(), outcome="ok")
                    fire("SIGNUP", "ok", elapsed)
                    return
                if response.status_code in (429, 503) and retry_after is not None:
                    response.success()  # expected under overload: counted below, retried later
                    outcome = code or str(response.status_code)
                    _State.recorder.write("signup", t=time.time(), outcome=outcome, retry_after=retry_after)
                    fire("SIGNUP", outcome, elapsed)
                    gevent.sleep(retry_after)
                    continue
                response.failure(f"signup {response.status_code} {code}")
                self.note_http_error("POST /v1/auth/signup", response.status_code, retry_after, code)
                _State.recorder.write("signup", t=time.time(), outcome="error", status=response.status_code)
                gevent.sleep(5.0)

    def login(self) -> None:
        while True:
            with self.client.post(
                "/v1/auth/login", json=self.credentials, catch_response=True, name="/v1/auth/login"
            ) as response:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if response.status_code == 200:
                    response.success()
                    self.take_session(response.json())
                    return
                code = _error_code(response)
                if response.status_code in (429, 503) and retry_after is not None:
                    response.success()
                    gevent.sleep(retry_after)
                    continue
                response.failure(f"login {response.status_code} {code}")
                self.note_http_error("POST /v1/auth/login", response.status_code, retry_after, code)
                gevent.sleep(5.0)

    def take_session(self, session: dict[str, Any]) -> None:
        self.access = session["access_token"]
        self.refresh = session["refresh_token"]

    def reauthenticate(self) -> None:
        with self.client.post(
            "/v1/auth/refresh",
            json={"refresh_token": self.refresh},
            catch_response=True,
            name="/v1/auth/refresh",
        ) as response:
            if response.status_code == 200:
                response.success()
                self.take_session(response.json())
                return
            response.success()  # an expired login: sign in again below
        self.login()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    def note_http_error(self, route: str, status: int, retry_after: float | None, code: str | None) -> None:
        """Every 5xx is written down: the spike checks that only 503 with Retry-After occurred."""
        if status >= 500:
            _State.recorder.write(
                "http_error", t=time.time(), route=route, status=status, retry_after=retry_after, code=code
            )

    def api(
        self, method: str, path: str, *, name: str, json_body: Any = None, expect: tuple[int, ...] = (200,)
    ) -> dict[str, Any] | None:
        """One JSON call; a 401 signs in again once; 429/503 with Retry-After are waited out once."""
        for attempt in range(2):
            with self.client.request(
                method, path, json=json_body, headers=self.auth, catch_response=True, name=name
            ) as response:
                if response.status_code in expect:
                    response.success()
                    try:
                        body = response.json()
                    except ValueError:
                        return {}
                    return body if isinstance(body, dict) else {"data": body}
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                code = _error_code(response)
                if response.status_code == 401 and attempt == 0:
                    response.success()
                    self.reauthenticate()
                    continue
                if response.status_code in (429, 503) and retry_after is not None:
                    response.success()
                    gevent.sleep(retry_after)
                    continue
                response.failure(f"{response.status_code} {code}")
                self.note_http_error(f"{method} {name}", response.status_code, retry_after, code)
                return None
        return None

    # --- a session ---
    @task
    def session(self) -> None:
        plan = self.workload.session()
        conversation = self.open_app(plan)
        if conversation is not None:
            self.chat(plan, conversation)
        gevent.sleep(self.rng.expovariate(self.compression / max(1e-6, self.options.away_mean_s)))

    def open_app(self, plan: SessionPlan) -> str | None:
        self.api("GET", "/v1/me", name="/v1/me")
        self.api("GET", "/v1/conversations?limit=20", name="/v1/conversations")
        if plan.continues is not None and plan.continues < len(self.conversations):
            conversation = self.conversations[plan.continues]
            branch = self.api("GET", f"/v1/conversations/{conversation}", name="/v1/conversations/[id]")
            messages = (branch or {}).get("messages") or [{}]
            # An answer still generating there (its phone walked away): the app starts a new chat.
            if branch is not None and messages[-1].get("status") not in ("queued", "streaming"):
                return conversation
        created = self.api("POST", "/v1/conversations", name="/v1/conversations", json_body={}, expect=(201,))
        if created is None or "id" not in created:
            return None
        self.conversations.append(created["id"])
        return str(created["id"])

    def chat(self, plan: SessionPlan, conversation: str) -> None:
        for turn in plan.turns:
            gevent.sleep(turn.think_time_s / self.compression)
            if not self.turn(conversation, turn):
                return  # the user gave up, or put the phone away for good: the session is over

    def turn(self, conversation: str, plan: TurnPlan) -> bool:
        """One message until it is answered, shed for good or abandoned; False ends the session."""
        body = {"content": plan.text, "thinking": plan.thinking, "stream": True}
        key = str(uuid.uuid4())
        path, name = f"/v1/conversations/{conversation}/messages", "/v1/conversations/[id]/messages"
        for attempt in range(1, max(1, self.options.max_send_attempts) + 1):
            obs, outcome = self.one_turn(path, name, body, key, plan, attempt)
            if outcome == UNATTENDED:
                return False
            if outcome != SHED:
                if (
                    outcome != ERROR
                    and obs.assistant_message_id
                    and self.rng.random() < self.options.p_feedback
                ):
                    self.feedback(obs.assistant_message_id)
                return True
            gevent.sleep(obs.retry_after or obs.body_retry_after or 1.0)
            if obs.acknowledged and obs.assistant_message_id:
                # The message is stored and its answer failed in the queue: ask for a new answer.
                path = f"/v1/messages/{obs.assistant_message_id}/regenerate"
                name = "/v1/messages/[id]/regenerate"
                body = {"thinking": plan.thinking, "stream": True}
                key = str(uuid.uuid4())
        return False

    def one_turn(
        self, path: str, name: str, body: dict[str, Any], key: str, plan: TurnPlan, attempt: int
    ) -> tuple[TurnObservation, str]:
        obs = TurnObservation()
        sent_wall, sent = time.time(), time.monotonic()
        outcome = ABANDONED
        try:
            self.stream(
                obs, "POST", path, name, body, key, sent, plan.background.after_s if plan.background else None
            )
            if obs.status == 401:
                self.reauthenticate()
                obs = TurnObservation()
                self.stream(obs, "POST", path, name, body, key, sent, None)
            if obs.acknowledged:
                _State.recorder.write(
                    "ack",
                    t=sent_wall,
                    tier=self.tier,
                    email=self.credentials.get("email"),
                    key=key,
                    route="regenerate" if "regenerate" in path else "send",
                    user_message_id=obs.user_message_id,
                    assistant_message_id=obs.assistant_message_id,
                )
                if self.rng.random() < self.options.p_replay:
                    self.replay(path, name, body, key, obs)
            background = "none"
            if obs.acknowledged and obs.terminal is None and obs.transport_error is None and plan.background:
                # The phone went to sleep mid-answer.
                if not plan.background.resumes:
                    outcome = UNATTENDED
                    return obs, outcome
                background = "resumed"
                # Back after a while: one more think time (the model's lognormal).
                away = lognormal(
                    self.rng, self.workload.config.think_time_median_s, self.workload.think_sigma
                )
                gevent.sleep(away / self.compression)
                self.resume(obs, sent)
            outcome, reason = classify(obs)
            self.report(obs, outcome, reason, sent_wall, attempt, plan, background)
            return obs, outcome
        finally:
            if outcome in (ABANDONED, UNATTENDED):
                _State.recorder.write(
                    "turn",
                    t=sent_wall,
                    t_end=time.time(),
                    tier=self.tier,
                    outcome=outcome,
                    reason=outcome,
                    attempt=attempt,
                    thinking=plan.thinking,
                    assistant_message_id=obs.assistant_message_id,
                    ttft=obs.first_token_s,
                )

    def stream(
        self,
        obs: TurnObservation,
        method: str,
        path: str,
        name: str,
        body: dict[str, Any] | None,
        key: str | None,
        sent: float,
        disconnect_after_s: float | None,
    ) -> None:
        """Send (or resume) and read events until the terminal one, or until the phone goes away."""
        headers = dict(self.auth)
        if key is not None:
            headers["Idempotency-Key"] = key
        limit = disconnect_after_s / self.compression if disconnect_after_s is not None else STREAM_TIMEOUT_S
        try:
            with self.client.request(
                method, path, json=body, headers=headers, stream=True, catch_response=True, name=name,
                timeout=(30, STREAM_TIMEOUT_S),
            ) as response:  # fmt: skip
                if obs.status is None or not 200 <= response.status_code < 300:
                    obs.status = response.status_code
                if not 200 <= response.status_code < 300:
                    obs.retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    error = _error_body(response)
                    obs.code = error.get("code")
                    obs.body_retry_after = parse_retry_after(str(error.get("retry_after_s") or ""))
                    if response.status_code in (429, 503) and obs.retry_after is not None:
                        response.success()  # shed: an expected answer under overload
                    elif response.status_code == 401:
                        response.success()
                    else:
                        response.failure(f"{response.status_code} {obs.code}")
                        self.note_http_error(
                            f"{method} {name}", response.status_code, obs.retry_after, obs.code
                        )
                    return
                if "text/event-stream" not in response.headers.get("Content-Type", ""):
                    # A 2xx with the turn as JSON: take its ids; the events are read from the log.
                    response.success()
                    with contextlib.suppress(ValueError):
                        turn = response.json()
                        obs.on_event(SseEvent("turn", turn if isinstance(turn, dict) else {}), 0.0)
                    if obs.assistant_message_id is not None and disconnect_after_s is None:
                        self.resume(obs, sent)
                    return
                response.success()
                parser = SseParser()
                with gevent.Timeout(limit, False):
                    for line in response.iter_lines(chunk_size=None):
                        event = parser.feed(line)
                        if event is None:
                            continue
                        obs.on_event(event, time.monotonic() - sent)
                        if obs.terminal is not None:
                            break
                response.close()
        except RequestException as exc:
            obs.transport_error = type(exc).__name__

    def resume(self, obs: TurnObservation, sent: float) -> None:
        assert obs.assistant_message_id is not None
        self.stream(
            obs,
            "GET",
            f"/v1/messages/{obs.assistant_message_id}/events?after={obs.last_seq}",
            "/v1/messages/[id]/events",
            None,
            None,
            sent,
            None,
        )

    def replay(self, path: str, name: str, body: dict[str, Any], key: str, obs: TurnObservation) -> None:
        """A flaky network: the same send again with the same key must return the same turn."""
        again = {**body, "stream": False}
        with self.client.request(
            "POST", path, json=again, headers={**self.auth, "Idempotency-Key": key},
            catch_response=True, name=f"{name} (replay)",
        ) as response:  # fmt: skip
            if response.status_code in (200, 202):
                response.success()
                turn = response.json()
                _State.recorder.write(
                    "replay",
                    t=time.time(),
                    key=key,
                    user_message_id=(turn.get("user_message") or {}).get("id"),
                    assistant_message_id=(turn.get("assistant_message") or {}).get("id"),
                    expected_user_message_id=obs.user_message_id,
                )
            elif response.status_code in (429, 503):
                response.success()
            else:
                response.failure(f"replay {response.status_code}")

    def feedback(self, message_id: str) -> None:
        rating = "up" if self.rng.random() < 0.85 else "down"
        self.api(
            "PUT",
            f"/v1/messages/{message_id}/feedback",
            name="/v1/messages/[id]/feedback",
            json_body={"rating": rating},
        )

    def report(
        self,
        obs: TurnObservation,
        outcome: str,
        reason: str,
        sent_wall: float,
        attempt: int,
        plan: TurnPlan,
        background: str,
    ) -> None:
        assert outcome in OUTCOMES
        _State.recorder.write(
            "turn",
            t=sent_wall,
            t_end=time.time(),
            tier=self.tier,
            outcome=outcome,
            reason=reason,
            code=obs.code,
            status=obs.status,
            attempt=attempt,
            thinking=plan.thinking,
            queued=obs.queued,
            degraded=obs.degraded,
            background=background,
            ttft=obs.first_token_s,
            ttlt=obs.last_token_s,
            assistant_message_id=obs.assistant_message_id,
        )
        if obs.first_token_s is not None and background == "none":
            fire("TTFT", self.tier, obs.first_token_s * 1000)
        if obs.last_token_s is not None and outcome != SHED:
            fire("TTLT", self.tier, obs.last_token_s * 1000)
        elapsed = (obs.last_token_s or 0.0) * 1000
        fire("TURN", f"{self.tier} {outcome}", elapsed, ShedError(reason) if outcome == ERROR else None)
        if outcome == SHED and obs.status is not None and obs.status >= 500 and obs.retry_after is None:
            self.note_http_error("turn", obs.status, None, obs.code)


def _error_body(response: Any) -> dict[str, Any]:
    with contextlib.suppress(ValueError, AttributeError):
        body = json.loads(response.content or b"{}")
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return error
    return {}


def _error_code(response: Any) -> str | None:
    code = _error_body(response).get("code")
    return str(code) if code is not None else None


class FreeUser(ChatUser):
    weight = 9


class PaidUser(ChatUser):
    weight = 1
    paid = True


# --- the load shape: --shape, found by Locust in this module's namespace ---
__all__ = ["FreeUser", "PaidUser", "SurgeShape"]
