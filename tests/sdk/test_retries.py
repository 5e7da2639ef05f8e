"""Retries: which failures are retried, how long the SDK waits, and why a retried send never makes a
second turn (httpx.MockTransport; the waits are recorded, not slept)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from surge import (
    APIConnectionError,
    AsyncSurge,
    ConflictError,
    InternalServerError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
    Surge,
)
from surge._retry import MAX_RETRY_AFTER

from tests.sdk.fakes import CONVERSATION_ID, FakeTurns, error_body, turn

Handler = Callable[[httpx.Request], httpx.Response]


class Script:
    """Answers requests with the given responses (or raises the given errors) in order, then 200s."""

    def __init__(self, *steps: httpx.Response | type[httpx.TransportError], ok: object = None) -> None:
        self.steps = list(steps)
        self.ok = ok if ok is not None else {"data": [], "next_cursor": None}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.steps:
            status = 201 if request.method == "POST" else 200
            return httpx.Response(status, json=self.ok)
        step = self.steps.pop(0)
        if isinstance(step, httpx.Response):
            return step
        raise step("scripted failure", request=request)


def sync_client(handler: Handler, **options) -> Surge:
    return Surge(
        base_url="http://surge.test",
        access_token="t",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        **options,
    )


def async_client(handler: Handler, **options) -> AsyncSurge:
    return AsyncSurge(
        base_url="http://surge.test",
        access_token="t",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        **options,
    )


def status(code: int, error: str, retry_after: float | None = None) -> httpx.Response:
    headers = {} if retry_after is None else {"retry-after": str(retry_after)}
    extra = {} if retry_after is None else {"retry_after_s": retry_after}
    return httpx.Response(code, json=error_body(error, **extra), headers=headers)


CONVERSATION = {
    "id": "c1",
    "title": None,
    "model": "m",
    "pinned": False,
    "archived": False,
    "created_at": "2025-01-27T09:00:00Z",
    "updated_at": "2025-01-27T09:00:00Z",
    "last_message_at": None,
}


@pytest.mark.parametrize(
    ("response", "wait"),
    [
        (status(429, "rate_limited", 3), 3.0),
        (status(503, "overloaded", 2), 2.0),
        (status(503, "signups_paused", 5), 5.0),
    ],
    ids=["429-rate_limited", "503-overloaded", "503-signups_paused"],
)
def test_429_and_503_are_retried_after_the_retry_after_they_carry(response, wait, sleeps):
    script = Script(response)
    with sync_client(script) as client:
        assert list(client.conversations.list()) == []
    assert len(script.requests) == 2
    assert sleeps.seconds == [wait]


@pytest.mark.parametrize(
    ("response", "wait"),
    [(status(429, "rate_limited", 3), 3.0), (status(503, "upstream_unavailable", 4), 4.0)],
    ids=["429", "503"],
)
async def test_async_429_and_503_are_retried_after_the_retry_after_they_carry(response, wait, sleeps):
    script = Script(response)
    async with async_client(script) as client:
        page = await client.conversations.list()
    assert page.data == [] and len(script.requests) == 2
    assert sleeps.seconds == [wait]


def test_retry_after_is_honoured_on_every_attempt_until_retries_run_out(sleeps):
    script = Script(status(503, "overloaded", 1), status(503, "overloaded", 2), status(503, "overloaded", 4))
    with sync_client(script) as client, pytest.raises(OverloadedError) as raised:
        client.me.get()
    assert len(script.requests) == 3, "2 retries by default"
    assert sleeps.seconds == [1.0, 2.0]
    assert raised.value.retry_after == 4


def test_a_retry_after_longer_than_the_cap_goes_to_the_caller_at_once(sleeps):
    script = Script(status(429, "quota_exceeded", 3600))
    with sync_client(script) as client, pytest.raises(RateLimitError) as raised:
        client.me.get()
    assert len(script.requests) == 1 and sleeps.seconds == []
    assert raised.value.retry_after == 3600 > MAX_RETRY_AFTER


def test_without_retry_after_the_wait_backs_off_exponentially_with_jitter(sleeps):
    script = Script(*[httpx.Response(500, json=error_body("internal"))] * 5)
    with sync_client(script, max_retries=4) as client, pytest.raises(InternalServerError):
        client.me.get()
    assert len(script.requests) == 5
    for wait, ceiling in zip(sleeps.seconds, [0.5, 1.0, 2.0, 4.0], strict=True):
        assert 0.75 * ceiling <= wait <= ceiling


def test_the_back_off_stops_growing_at_eight_seconds(sleeps):
    script = Script(*[httpx.ConnectError] * 7)
    with sync_client(script, max_retries=6) as client, pytest.raises(APIConnectionError):
        client.me.get()
    assert 6.0 <= max(sleeps.seconds) <= 8.0


def test_connection_errors_are_retried(sleeps):
    script = Script(httpx.ConnectError, httpx.ReadTimeout, ok={"data": [], "next_cursor": None})
    with sync_client(script) as client:
        assert list(client.conversations.list()) == []
    assert len(script.requests) == 3 and len(sleeps.seconds) == 2


def test_max_retries_zero_and_with_options_change_how_often(sleeps):
    with sync_client(Script(status(429, "rate_limited", 1))) as client, pytest.raises(RateLimitError):
        client.with_options(max_retries=0).me.get()
    script = Script(*[status(503, "overloaded", 1)] * 4, ok={"data": [], "next_cursor": None})
    with sync_client(script, max_retries=0) as client:
        client.with_options(max_retries=4).conversations.list()
    assert len(script.requests) == 5


def test_a_create_that_may_have_happened_is_not_replayed(sleeps):
    # The request went out and the answer was lost (or the server failed after acting): sending it again
    # could create a second conversation.
    failures = [
        (httpx.ReadError, APIConnectionError),
        (httpx.Response(500, json=error_body("internal")), InternalServerError),
    ]
    for failure, error in failures:
        script = Script(failure)
        with sync_client(script) as client, pytest.raises(error):
            client.conversations.create(title="once")
        assert len(script.requests) == 1


def test_a_create_the_server_never_acted_on_is_retried(sleeps):
    # Never connected, or turned away by admission (429/503) before anything happened.
    for failure in (httpx.ConnectError, status(503, "overloaded", 1), status(429, "rate_limited", 1)):
        script = Script(failure, ok=CONVERSATION)
        with sync_client(script) as client:
            assert client.conversations.create(title="once").id == "c1"
        assert len(script.requests) == 2


def test_a_conflict_is_final_unless_the_server_says_to_retry(sleeps):
    script = Script(status(409, "conflict"))
    with sync_client(script) as client, pytest.raises(ConflictError):
        client.me.update(display_name="Ada")
    assert len(script.requests) == 1
    script = Script(status(409, "conflict", 1), ok=turn())
    with sync_client(script) as client:
        client.messages.send(CONVERSATION_ID, "Hi!")
    assert len(script.requests) == 2 and sleeps.seconds[-1] == 1.0


class TurnsByKey:
    """A server that creates a turn per new idempotency key and fails the first ``failures`` attempts
    after acting on them (the turn is created, the answer is lost)."""

    def __init__(self, *failures: httpx.Response | type[httpx.TransportError]) -> None:
        self.failures = list(failures)
        self.turns: dict[str, dict] = {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = request.headers["idempotency-key"]
        created = self.turns.setdefault(key, turn(assistant_id=f"assistant-{len(self.turns) + 1}"))
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, httpx.Response):
                return failure
            raise failure("the answer was lost", request=request)
        return httpx.Response(202, json=created)


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.Response(502, text="bad gateway")],
    ids=["read-error", "read-timeout", "protocol-error", "502"],
)
def test_a_retried_send_reuses_its_idempotency_key_and_makes_no_second_turn(failure, sleeps):
    server = TurnsByKey(failure)
    with sync_client(server) as client:
        sent = client.messages.send(CONVERSATION_ID, "Hi!")
    first, second = server.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.headers["idempotency-key"].startswith("surge-sdk-")
    assert first.content == second.content
    assert len(server.turns) == 1 and sent.assistant_message.id == "assistant-1"


async def test_async_retried_send_reuses_its_idempotency_key_and_makes_no_second_turn(sleeps):
    server = TurnsByKey(httpx.ReadError, status(503, "overloaded", 1))
    async with async_client(server) as client:
        sent = await client.messages.send(CONVERSATION_ID, "Hi!")
    assert len({request.headers["idempotency-key"] for request in server.requests}) == 1
    assert len(server.requests) == 3 and len(server.turns) == 1
    assert sent.assistant_message.id == "assistant-1"


def test_a_retried_regenerate_reuses_its_idempotency_key(sleeps):
    server = TurnsByKey(httpx.ReadError)
    with sync_client(server) as client:
        client.messages.regenerate("assistant-0", thinking=True)
    first, second = server.requests
    assert first.url.path == "/v1/messages/assistant-0/regenerate"
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert json.loads(first.content) == {"thinking": True, "stream": False}


def test_each_send_has_its_own_key_unless_the_caller_gives_one(sleeps):
    server = TurnsByKey()
    with sync_client(server) as client:
        client.messages.send(CONVERSATION_ID, "one")
        client.messages.send(CONVERSATION_ID, "two")
        client.messages.send(CONVERSATION_ID, "three", idempotency_key="my-key")
        client.messages.send(CONVERSATION_ID, "three", idempotency_key="my-key")
    keys = [request.headers["idempotency-key"] for request in server.requests]
    assert keys[0] != keys[1] and keys[2] == keys[3] == "my-key"
    assert len(server.turns) == 3


def test_a_streamed_send_turned_away_by_admission_is_retried_with_the_same_key(sleeps):
    fake = FakeTurns()
    rejections = [status(429, "rate_limited", 2)]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and rejections:
            fake.requests.append(request)
            return rejections.pop()
        return fake.handler(request)

    with sync_client(handler) as client, client.messages.stream(CONVERSATION_ID, "Hi!") as stream:
        stream.until_done()
    first, second = fake.connections
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert sleeps.seconds == [2.0] and len(fake.turns_by_key) == 1


def test_per_call_timeout_and_extra_headers_reach_the_request(sleeps):
    script = Script(ok={"data": [], "next_cursor": None})
    with sync_client(script, default_headers={"X-App": "surge-ios"}) as client:
        client.conversations.list(timeout=3.5, extra_headers={"X-Trace": "abc"})
        client.with_options(timeout=httpx.Timeout(9.0)).conversations.list()
    first, second = script.requests
    assert first.extensions["timeout"] == httpx.Timeout(3.5).as_dict()
    assert first.headers["x-trace"] == "abc" and first.headers["x-app"] == "surge-ios"
    assert first.headers["authorization"] == "Bearer t"
    assert first.headers["user-agent"].startswith("surge-sdk/")
    assert second.extensions["timeout"] == httpx.Timeout(9.0).as_dict()
    assert "x-trace" not in second.headers


def test_query_parameters_are_sent_as_the_api_spells_them(sleeps):
    script = Script(ok={"data": [], "next_cursor": None})
    with sync_client(script) as client:
        list(client.conversations.list(limit=5, archived=True, q="sky blue"))
    assert dict(script.requests[0].url.params) == {"limit": "5", "archived": "true", "q": "sky blue"}


def test_ids_are_escaped_in_paths(sleeps):
    script = Script(status(404, "not_found"))
    with sync_client(script) as client, pytest.raises(NotFoundError):
        client.conversations.get("../me")
    assert script.requests[0].url.raw_path == b"/v1/conversations/..%2Fme"
