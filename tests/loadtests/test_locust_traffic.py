"""How a Locust user's SDK client is seen: every exchange as a Locust request, every send the SDK makes
for a message (its retries included) as an attempt of that message, sign-ups and 5xx as records.

The real ``surge.Surge`` runs over ``ReportingTransport`` and a scripted Surge (httpx.MockTransport), in
this process: nothing here imports locust."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest
from surge import APIConnectionError, OverloadedError, SignupsPausedError, Surge

from loadtests.locust_support import (
    DEGRADED,
    ERROR,
    SHED,
    Recorder,
    ReportingTransport,
    SendAttempts,
    TrafficLog,
    TurnObservation,
    classify,
    failure_of,
    load_records,
    route_name,
)
from tests.sdk.fakes import (
    ASSISTANT_MESSAGE_ID,
    CONVERSATION_ID,
    error_body,
    event_stream_body,
    session_body,
    turn_events,
)

SEND_PATH = f"/v1/conversations/{CONVERSATION_ID}/messages"
SEND_NAME = "/v1/conversations/[id]/messages"


def refused(code: str = "overloaded", retry_after: str | None = "3") -> httpx.Response:
    headers = {"retry-after": retry_after} if retry_after else {}
    return httpx.Response(503, json=error_body(code), headers=headers)


def streamed() -> httpx.Response:
    body = event_stream_body(turn_events(), after=0, with_turn=True)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


@dataclass
class ScriptedSurge:
    """Answers each request with the next scripted response for its (method, path), then a default."""

    script: dict[tuple[str, str], list[httpx.Response | type[Exception]]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.script.get((request.method, request.url.path), [])
        if queue:
            step = queue.pop(0)
            if isinstance(step, type):
                raise step("scripted failure", request=request)
            return step
        if request.url.path == "/v1/auth/signup":
            return httpx.Response(201, json=session_body("access", "refresh"))
        if request.url.path == "/v1/auth/refresh":
            return httpx.Response(200, json=session_body("access-2", "refresh-2"))
        if request.url.path == SEND_PATH:
            return streamed()
        return httpx.Response(404, json=error_body("not_found"))


@dataclass
class Fired:
    """The Locust request events a user fired: (type, name, failure)."""

    events: list[tuple[str, str, str | None]] = field(default_factory=list)

    def __call__(self, request_type: str, name: str, milliseconds: float, failure: str | None) -> None:
        assert milliseconds >= 0
        self.events.append((request_type, name, failure))


@pytest.fixture
def sleeps(monkeypatch):
    waited: list[float] = []
    monkeypatch.setattr("surge._retry.sleep", waited.append)
    return waited


def user(server: ScriptedSurge, tmp_path, **options) -> tuple[Surge, TrafficLog, Fired, Recorder]:
    fired, recorder = Fired(), Recorder(tmp_path)
    traffic = TrafficLog(recorder, fired)
    transport = ReportingTransport(traffic, inner=httpx.MockTransport(server))
    client = Surge(base_url="http://surge.test", http_client=httpx.Client(transport=transport), **options)
    return client, traffic, fired, recorder


def send_one(client: Surge, traffic: TrafficLog, reported: list[TurnObservation]) -> SendAttempts:
    """Stream one message as a Locust user does: every send the SDK makes is an attempt."""
    attempts = SendAttempts(reported.append)
    traffic.attempts = attempts
    try:
        with client.messages.stream(CONVERSATION_ID, "Hi!", idempotency_key="k1") as stream:
            for event in stream:
                assert attempts.current is not None
                attempts.current.on_event(event, 0.0)
    finally:
        traffic.attempts = None
    return attempts


def test_requests_are_named_by_route_and_expected_refusals_are_not_failures():
    assert route_name(f"/v1/conversations/{CONVERSATION_ID}/messages") == SEND_NAME
    assert route_name("/v1/messages/m-1/events") == "/v1/messages/[id]/events"
    assert route_name("/v1/conversations") == "/v1/conversations"
    with_token = httpx.Request("GET", "http://s/v1/me", headers={"Authorization": "Bearer t"})
    without = httpx.Request("POST", "http://s/v1/auth/login")
    assert failure_of(with_token, 200, None, None) is None
    assert failure_of(with_token, 503, 3.0, "overloaded") is None  # shed by design
    assert failure_of(with_token, 503, None, "overloaded") == "503 overloaded"  # without Retry-After
    assert failure_of(with_token, 401, None, "unauthorized") is None  # the SDK refreshes and repeats
    assert failure_of(without, 401, None, "unauthorized") == "401 unauthorized"  # wrong credentials
    assert failure_of(with_token, 500, None, "internal") == "500 internal"


def test_a_send_the_sdk_retries_after_two_refusals_is_two_shed_attempts_and_one_served(tmp_path, sleeps):
    server = ScriptedSurge({("POST", SEND_PATH): [refused(retry_after="3"), refused(retry_after="2")]})
    client, traffic, fired, _ = user(server, tmp_path, access_token="access")
    reported: list[TurnObservation] = []
    attempts = send_one(client, traffic, reported)

    assert sleeps == [3.0, 2.0], "the SDK waited out each Retry-After before sending again"
    keys = {request.headers["idempotency-key"] for request in server.requests}
    assert keys == {"k1"}, "every attempt is the same send"
    assert [(obs.attempt, classify(obs)[0]) for obs in reported] == [(1, SHED), (2, SHED)]
    assert reported[0].retry_after == 3.0 and reported[0].code == "overloaded"
    final = attempts.current
    assert final is not None and final.attempt == 3 and not final.settled
    assert classify(final) == (DEGRADED, "degraded event")  # the scripted answer carries a degraded event
    assert final.acknowledged and final.assistant_message_id == ASSISTANT_MESSAGE_ID
    assert final.sent > reported[1].sent, "the TTFT clock starts at the send that was answered"
    assert fired.events == [("POST", SEND_NAME, None)] * 3, "each attempt is a Locust request, none failed"


def test_a_send_refused_by_every_attempt_ends_with_the_sdks_error_and_each_attempt_reported(tmp_path, sleeps):
    server = ScriptedSurge({("POST", SEND_PATH): [refused(), refused(), refused()]})
    client, traffic, _, _ = user(server, tmp_path, access_token="access", max_retries=2)
    reported: list[TurnObservation] = []
    with pytest.raises(OverloadedError):
        send_one(client, traffic, reported)
    assert [(obs.attempt, classify(obs)[0]) for obs in reported] == [(1, SHED), (2, SHED), (3, SHED)]


def test_a_connection_that_fails_is_an_error_attempt_and_a_failed_request(tmp_path, sleeps):
    server = ScriptedSurge({("POST", SEND_PATH): [httpx.ConnectError]})
    client, traffic, fired, _ = user(server, tmp_path, access_token="access", max_retries=0)
    reported: list[TurnObservation] = []
    with pytest.raises(APIConnectionError):
        send_one(client, traffic, reported)
    assert [classify(obs) for obs in reported] == [(ERROR, "transport: ConnectError")]
    assert fired.events == [("POST", SEND_NAME, "ConnectError")]


def test_a_401_is_not_an_attempt_the_sdk_refreshes_and_sends_again(tmp_path, sleeps):
    server = ScriptedSurge({("POST", SEND_PATH): [httpx.Response(401, json=error_body("unauthorized"))]})
    client, traffic, fired, _ = user(server, tmp_path, access_token="access", refresh_token="refresh")
    reported: list[TurnObservation] = []
    attempts = send_one(client, traffic, reported)
    assert reported == [] and attempts.count == 1
    assert attempts.current is not None and attempts.current.acknowledged
    assert [name for _, name, _ in fired.events] == [SEND_NAME, "/v1/auth/refresh", SEND_NAME]
    assert all(failure is None for _, _, failure in fired.events)


def test_sign_up_attempts_and_failed_5xx_are_recorded(tmp_path, sleeps):
    server = ScriptedSurge(
        {
            ("POST", "/v1/auth/signup"): [refused("signups_paused", "4")],
            ("GET", "/v1/me"): [httpx.Response(500, json=error_body("internal"))] * 3,
        }
    )
    client, _, fired, recorder = user(server, tmp_path, max_retries=1)
    client.auth.sign_up("ada@example.com", "correct horse")
    with pytest.raises(Exception, match="500"):
        client.me.get()
    recorder.close()
    records = list(load_records(tmp_path))
    signups = [(r["outcome"], r.get("retry_after")) for r in records if r["type"] == "signup"]
    assert signups == [("signups_paused", 4.0), ("ok", None)]
    assert [r for r in fired.events if r[0] == "SIGNUP"] == [
        ("SIGNUP", "signups_paused", None),
        ("SIGNUP", "ok", None),
    ]
    errors = [r for r in records if r["type"] == "http_error"]
    assert [(r["route"], r["status"], r["code"]) for r in errors] == [("GET /v1/me", 500, "internal")] * 2
    assert ("GET", "/v1/me", "500 internal") in fired.events


def test_a_sign_up_refused_every_time_raises_and_each_attempt_is_counted(tmp_path, sleeps):
    server = ScriptedSurge({("POST", "/v1/auth/signup"): [refused("signups_paused", "4")] * 2})
    client, _, _, recorder = user(server, tmp_path, max_retries=1)
    with pytest.raises(SignupsPausedError):
        client.auth.sign_up("ada@example.com", "correct horse")
    recorder.close()
    outcomes = [r["outcome"] for r in load_records(tmp_path) if r["type"] == "signup"]
    assert outcomes == ["signups_paused", "signups_paused"]


def test_requests_made_under_a_name_such_as_a_replay_are_reported_under_it(tmp_path):
    server = ScriptedSurge()
    client, traffic, fired, _ = user(server, tmp_path, access_token="access")
    traffic.name = f"{SEND_NAME} (replay)"
    with client.messages.stream(CONVERSATION_ID, "Hi!", idempotency_key="k1") as stream:
        stream.until_done()
    assert fired.events == [("POST", f"{SEND_NAME} (replay)", None)]
