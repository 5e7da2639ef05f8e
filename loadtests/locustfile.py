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

Every turn streams (``stream: true``) with an Idempotency-Key. Each attempt at it has an outcome: served,
queued_then_served, degraded, shed (429/503 with Retry-After, or an ``error`` event ``overloaded``)
or error; Retry-After is honoured before the same message is sent again (same key) or, after a
failure in the queue, regenerated. Custom Locust metrics: ``TTFT`` and ``TTLT`` (send to the first
reasoning/content event, and to the terminal event) named by tier, and ``TURN`` named
"<tier> <outcome>". With ``--record-dir`` each process also writes JSON lines (acknowledged turns with
their ids and keys, outcomes, sign-ups, user counts) for ``loadtests/spike.py``'s report and audit.

**The phones run the SDK.** Each user drives Surge with its own sync ``surge.Surge`` client (gevent
makes its blocking sockets cooperative), as an app built on the SDK would: the SDK refreshes the token,
retries what is safe to retry (a refused send is sent again after its Retry-After, with the same
Idempotency-Key: at most ``--max-send-attempts`` sends per message), and a stream whose connection
drops resumes from its last ``seq`` by itself. Locust's own ``HttpUser`` client is not used, because
then the SDK would be reduced to its SSE parser and its retry and resume logic would never see load.
Locust's statistics stay per request all the same: the client's httpx transport
(``ReportingTransport``) reports every exchange the SDK makes (each retry and each reconnection of a
stream, which is what the server saw), timed to the response's headers as Locust times a streamed
request of its own, named by route, and failed unless it is an answer Surge gives by design (2xx, 429
or 503 with Retry-After, a 401 the SDK answers by refreshing). Every send the SDK makes for a message
is an attempt of that message (``SendAttempts``), so a send refused twice and accepted the third time
is still two shed turns and one served, as the report counts them.

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

import itertools
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import gevent
import httpx
from locust import User, constant, events, task
from locust.runners import WorkerRunner
from surge import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    MessageStream,
    Surge,
    SurgeError,
    Turn,
)

from loadtests.locust_shapes import SurgeShape
from loadtests.locust_support import (
    ABANDONED,
    ERROR,
    OUTCOMES,
    SHED,
    UNATTENDED,
    Recorder,
    ReportingTransport,
    SendAttempts,
    TrafficLog,
    TurnObservation,
    classify,
    load_accounts,
)
from loadtests.shapes import SHAPES
from loadtests.workload import SessionPlan, TurnPlan, Workload, WorkloadConfig, lognormal

STREAM_TIMEOUT_S = 900.0  # a turn's stream that has not ended after this long is broken
PASSWORD = "spike-password"  # noqa: S105 (throwaway accounts of a load test)
T = TypeVar("T")
Rating = Literal["up", "down"]


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


def fire(request_type: str, name: str, milliseconds: float, failure: str | None = None) -> None:
    events.request.fire(
        request_type=request_type,
        name=name,
        response_time=milliseconds,
        response_length=0,
        exception=RequestFailed(failure) if failure is not None else None,
        context={},
    )


class RequestFailed(Exception):
    """Locust's failure message for a request or a turn that failed (shed ones are expected, not failures)."""


@dataclass(frozen=True)
class Send:
    """One message to send: a new user message, or another answer to it after a failure in the queue."""

    regenerate: bool
    target: str  # the conversation, or the assistant message to answer again
    text: str
    thinking: bool
    key: str  # the Idempotency-Key of this send and of every retry of it

    @property
    def name(self) -> str:
        return "/v1/messages/[id]/regenerate" if self.regenerate else "/v1/conversations/[id]/messages"

    def stream(self, client: Surge) -> MessageStream:
        if self.regenerate:
            return client.messages.stream_regenerate(
                self.target, thinking=self.thinking, idempotency_key=self.key
            )
        return client.messages.stream(
            self.target, self.text, thinking=self.thinking, idempotency_key=self.key
        )

    def replay(self, client: Surge) -> Turn:
        """The same send again, not streamed (a flaky network): it must return the same turn."""
        if self.regenerate:
            return client.messages.regenerate(self.target, thinking=self.thinking, idempotency_key=self.key)
        return client.messages.send(self.target, self.text, thinking=self.thinking, idempotency_key=self.key)


# --- the users ---
class ChatUser(User):
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
        self.credentials: dict[str, str] = {}
        self.traffic = TrafficLog(_State.recorder, fire)
        timeout = httpx.Timeout(STREAM_TIMEOUT_S, connect=30)
        self.surge = Surge(
            base_url=self.host,
            timeout=timeout,
            http_client=httpx.Client(transport=ReportingTransport(self.traffic), timeout=timeout),
        )
        self.sign_in()

    def on_stop(self) -> None:
        self.surge.close()

    # --- accounts ---
    def sign_in(self) -> None:
        if self.paid and _State.accounts:
            worker = getattr(self.environment.runner, "worker_index", 0) or 0
            index = (next(_State.paid) + worker * 997) % len(_State.accounts)
            self.credentials = _State.accounts[index]
            self.login()
        else:
            self.sign_up()
        me = self.call(self.surge.me.get)
        if me is not None:
            # Label by the tier the server says (a paid user without an accounts file is free).
            self.tier = me.tier

    def sign_up(self) -> None:
        """A fresh account; every refused attempt (the SDK's retries included) is a ``signup`` record,
        written by the traffic log."""
        email = f"free-{uuid.uuid4().hex[:12]}@spike.example"
        self.credentials = {"email": email, "password": PASSWORD}
        self.until_signed_in(lambda: self.surge.auth.sign_up(email, PASSWORD))

    def login(self) -> None:
        email, password = self.credentials["email"], self.credentials["password"]
        self.until_signed_in(lambda: self.surge.auth.log_in(email, password))

    def until_signed_in(self, sign_in: Callable[[], object]) -> None:
        """Repeat ``sign_in`` until it works, waiting (once the SDK's own retries are spent) a refusal's
        Retry-After, else 5 s."""
        while True:
            try:
                sign_in()
                return
            except APIStatusError as exc:
                refused = exc.status_code in (429, 503) and exc.retry_after is not None
                gevent.sleep(exc.retry_after if refused and exc.retry_after is not None else 5.0)
            except APIConnectionError:
                gevent.sleep(5.0)

    def call(self, action: Callable[[], T]) -> T | None:
        """One SDK call (the SDK waits out a 429/503 and retries); None when it failed, which the traffic log
        has reported. A session the server no longer accepts signs in again, once."""
        for attempt in range(2):
            try:
                return action()
            except AuthenticationError:
                if attempt:
                    return None
                self.login()
            except SurgeError:
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
        self.call(self.surge.me.get)
        self.call(lambda: self.surge.conversations.list(limit=20))
        if plan.continues is not None and plan.continues < len(self.conversations):
            conversation = self.conversations[plan.continues]
            detail = self.call(lambda: self.surge.conversations.get(conversation))
            # An answer still generating there (its phone walked away): the app starts a new chat.
            if detail is not None and (
                not detail.messages or detail.messages[-1].status not in ("queued", "streaming")
            ):
                return conversation
        created = self.call(self.surge.conversations.create)
        if created is None:
            return None
        self.conversations.append(created.id)
        return created.id

    def chat(self, plan: SessionPlan, conversation: str) -> None:
        for turn in plan.turns:
            gevent.sleep(turn.think_time_s / self.compression)
            if not self.turn(conversation, turn):
                return  # the user gave up, or put the phone away for good: the session is over

    def turn(self, conversation: str, plan: TurnPlan) -> bool:
        """One message until it is answered, shed for good or abandoned; False ends the session."""
        send = Send(False, conversation, plan.text, plan.thinking, str(uuid.uuid4()))
        attempts = SendAttempts(lambda obs: self.report(obs, *classify(obs), plan, "none"))
        limit = max(1, self.options.max_send_attempts)
        while attempts.count < limit:
            obs, outcome = self.one_turn(send, attempts, limit, plan)
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
                send = Send(True, obs.assistant_message_id, plan.text, plan.thinking, str(uuid.uuid4()))
        return False

    def one_turn(
        self, send: Send, attempts: SendAttempts, limit: int, plan: TurnPlan, *, signed_in: bool = False
    ) -> tuple[TurnObservation, str]:
        """Send (the SDK retrying a refusal, up to the attempts left) and follow the answer until it ends,
        or the phone goes away; the outcome of the last attempt. Refused attempts are reported as they
        come back; the accepted one here."""
        client = self.surge.with_options(max_retries=max(0, limit - attempts.count - 1))
        away_after = plan.background.after_s if plan.background else None
        sent_before = attempts.count
        self.traffic.attempts = attempts
        try:
            self.follow(lambda: attempts.current, send.stream(client), away_after)
        except SurgeError as exc:
            if attempts.current is not None and not attempts.current.settled:
                attempts.current.transport_error = type(exc).__name__
        finally:
            self.traffic.attempts = None
        obs = attempts.current
        if obs is None or attempts.count == sent_before:
            # Nothing went out: the session was refused and could not be refreshed. Sign in, send again.
            self.login()
            if not signed_in:
                return self.one_turn(send, attempts, limit, plan, signed_in=True)
            obs = attempts.current = TurnObservation(attempt=attempts.count + 1, transport_error="not sent")
        if obs.settled:
            return obs, classify(obs)[0]
        outcome = ABANDONED
        try:
            if obs.acknowledged:
                _State.recorder.write(
                    "ack",
                    t=obs.sent_wall,
                    tier=self.tier,
                    email=self.credentials.get("email"),
                    key=send.key,
                    route="regenerate" if send.regenerate else "send",
                    user_message_id=obs.user_message_id,
                    assistant_message_id=obs.assistant_message_id,
                )
                if self.rng.random() < self.options.p_replay:
                    self.replay(send, obs)
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
                self.resume(obs)
            outcome, reason = classify(obs)
            self.report(obs, outcome, reason, plan, background)
            return obs, outcome
        finally:
            obs.settled = True
            if outcome in (ABANDONED, UNATTENDED):
                self.write_turn(obs, plan, outcome, outcome)

    def follow(
        self, attempt: Callable[[], TurnObservation | None], stream: MessageStream, away_after_s: float | None
    ) -> None:
        """Read a stream's events into the attempt in progress (``attempt()``: the SDK may send again) until
        the terminal one, or until the phone goes away after ``away_after_s`` (uncompressed)."""
        limit = away_after_s / self.compression if away_after_s is not None else STREAM_TIMEOUT_S
        with stream, gevent.Timeout(limit, False):
            for event in stream:
                obs = attempt()
                if obs is None:
                    continue
                obs.on_event(event, time.monotonic() - obs.sent)
                if obs.terminal is not None:
                    break

    def resume(self, obs: TurnObservation) -> None:
        """Back from the background: the events after the last one seen, to the end."""
        assert obs.assistant_message_id is not None
        stream = self.surge.messages.events(obs.assistant_message_id, after=obs.last_seq)
        try:
            self.follow(lambda: obs, stream, None)
        except SurgeError as exc:
            obs.transport_error = type(exc).__name__

    def replay(self, send: Send, obs: TurnObservation) -> None:
        """A flaky network: the same send again with the same key must return the same turn."""
        self.traffic.name = f"{send.name} (replay)"
        try:
            turn = send.replay(self.surge)
        except SurgeError:
            return  # reported by the traffic log
        finally:
            self.traffic.name = None
        _State.recorder.write(
            "replay",
            t=time.time(),
            key=send.key,
            user_message_id=turn.user_message.id,
            assistant_message_id=turn.assistant_message.id,
            expected_user_message_id=obs.user_message_id,
        )

    def feedback(self, message_id: str) -> None:
        rating: Rating = "up" if self.rng.random() < 0.85 else "down"
        self.call(lambda: self.surge.messages.feedback(message_id, rating))

    def write_turn(
        self, obs: TurnObservation, plan: TurnPlan, outcome: str, reason: str, **fields: Any
    ) -> None:
        _State.recorder.write(
            "turn",
            t=obs.sent_wall,
            t_end=time.time(),
            tier=self.tier,
            outcome=outcome,
            reason=reason,
            attempt=obs.attempt,
            thinking=plan.thinking,
            assistant_message_id=obs.assistant_message_id,
            ttft=obs.first_token_s,
            **fields,
        )

    def report(
        self, obs: TurnObservation, outcome: str, reason: str, plan: TurnPlan, background: str
    ) -> None:
        """Record an attempt's outcome and fire its ``TURN`` (and ``TTFT``, ``TTLT``) metrics."""
        assert outcome in OUTCOMES
        self.write_turn(
            obs, plan, outcome, reason, code=obs.code, status=obs.status, queued=obs.queued,
            degraded=obs.degraded, background=background, ttlt=obs.last_token_s,
        )  # fmt: skip
        if obs.first_token_s is not None and background == "none":
            fire("TTFT", self.tier, obs.first_token_s * 1000)
        if obs.last_token_s is not None and outcome != SHED:
            fire("TTLT", self.tier, obs.last_token_s * 1000)
        elapsed = (obs.last_token_s or 0.0) * 1000
        fire("TURN", f"{self.tier} {outcome}", elapsed, reason if outcome == ERROR else None)


class FreeUser(ChatUser):
    weight = 9


class PaidUser(ChatUser):
    weight = 1
    paid = True


# --- the load shape: --shape, found by Locust in this module's namespace ---
__all__ = ["FreeUser", "PaidUser", "SurgeShape"]
