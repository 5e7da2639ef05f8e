"""The resources whose routes are not merged yet (turns, devices, models, usage, admin), checked against
API.md with httpx.MockTransport: the request each method sends and the typed result it decodes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from surge import (
    AccountUsage,
    AsyncSurge,
    Device,
    Message,
    Model,
    PermissionDeniedError,
    Readiness,
    Surge,
    Turn,
)

from tests.sdk.fakes import NOW, error_body, message, turn

DEVICE = {
    "id": "d1",
    "platform": "ios",
    "app_version": "1.4.2",
    "locale": "fr-FR",
    "created_at": NOW,
    "last_seen_at": NOW,
}
MODEL = {
    "id": "deepseek-r1",
    "display_name": "DeepSeek R1",
    "thinking": "always",
    "context_tokens": 131072,
    "max_output_tokens": 32768,
}
USAGE = {
    "tier": "free",
    "limits": {"messages": 50, "tokens": 200000, "concurrent_turns": 2},
    "used": {"messages": 3, "tokens": 1234},
    "resets_at": "2025-01-28T00:00:00Z",
}

# (method, path) -> (status, JSON body, headers): a fresh response is made for every request.
ROUTES: dict[tuple[str, str], tuple[int, object, dict[str, str]]] = {
    ("POST", "/v1/devices"): (201, DEVICE, {}),
    ("GET", "/v1/devices"): (200, {"data": [DEVICE]}, {}),
    ("DELETE", "/v1/devices/d1"): (204, None, {}),
    ("GET", "/v1/models"): (200, {"data": [MODEL]}, {}),
    ("GET", "/v1/me/usage"): (200, USAGE, {}),
    ("POST", "/v1/conversations/c1/messages"): (202, turn(), {}),
    ("POST", "/v1/messages/assistant-message-1/regenerate"): (202, turn("assistant-2"), {}),
    ("GET", "/v1/messages/assistant-message-1"): (200, message(status="streaming", content="Hel"), {}),
    ("POST", "/v1/messages/assistant-message-1/cancel"): (200, message(status="cancelled"), {}),
    ("PUT", "/v1/messages/assistant-message-1/feedback"): (200, message(feedback="up"), {}),
    ("GET", "/v1/admin/fleet"): (200, {"workers": [{"url": "http://w1", "healthy": True}]}, {}),
    ("PUT", "/v1/admin/overload"): (200, {"level": 2, "signups_open": None}, {}),
    ("GET", "/readyz"): (
        503,
        {"status": "unavailable", "checks": {"database": "ok", "redis": "failed: TimeoutError"}},
        {"retry-after": "5"},
    ),
}


class Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.routes = dict(ROUTES)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body, headers = self.routes[(request.method, request.url.path)]
        if body is None:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def last_body(self) -> object:
        return json.loads(self.last.content)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(recorder: Recorder):
    with Surge(
        base_url="http://surge.test",
        access_token="t",
        http_client=httpx.Client(transport=httpx.MockTransport(recorder)),
    ) as client:
        yield client


def test_devices_register_list_and_delete(client, recorder):
    device = client.devices.register("ios", "apns-token", app_version="1.4.2", locale="fr-FR")
    assert isinstance(device, Device) and device.platform == "ios" and device.locale == "fr-FR"
    assert recorder.last_body() == {
        "platform": "ios",
        "push_token": "apns-token",
        "app_version": "1.4.2",
        "locale": "fr-FR",
    }
    assert "push_token" not in device.to_dict(), "the push token is write-only"
    client.devices.register("android", "fcm-token")
    assert recorder.last_body() == {"platform": "android", "push_token": "fcm-token"}
    assert [item.id for item in client.devices.list()] == ["d1"]
    client.devices.delete("d1")
    assert recorder.last.method == "DELETE"


def test_models_and_usage(client):
    (model,) = client.models.list()
    assert isinstance(model, Model) and model.thinking == "always" and model.context_tokens == 131072
    usage = client.me.usage()
    assert isinstance(usage, AccountUsage) and usage.limits["concurrent_turns"] == 2
    assert usage.resets_at == datetime(2025, 1, 28, tzinfo=UTC)


def test_turn_routes_send_what_api_md_says(client, recorder):
    sent = client.messages.send("c1", "Hi!", parent_id="m0", model="deepseek-r1", thinking=False)
    assert isinstance(sent, Turn) and sent.assistant_message.status == "queued"
    assert recorder.last_body() == {
        "content": "Hi!",
        "parent_id": "m0",
        "model": "deepseek-r1",
        "thinking": False,
        "stream": False,
    }
    assert recorder.last.headers["idempotency-key"]

    client.messages.send("c1", "Hi!")
    assert "parent_id" not in recorder.last_body(), "left out: the server continues the current branch"
    client.messages.send("c1", "Hi again!", parent_id=None)
    assert recorder.last_body()["parent_id"] is None, "None is sent as null: a new root"

    again = client.messages.regenerate("assistant-message-1", model="deepseek-v3.1")
    assert again.assistant_message.id == "assistant-2"
    assert recorder.last_body() == {"model": "deepseek-v3.1", "stream": False}

    partial = client.messages.get("assistant-message-1")
    assert isinstance(partial, Message) and partial.status == "streaming" and partial.content == "Hel"
    assert client.messages.cancel("assistant-message-1").status == "cancelled"

    rated = client.messages.feedback("assistant-message-1", "up", comment="Clear and short.")
    assert rated.feedback == "up" and recorder.last_body() == {"rating": "up", "comment": "Clear and short."}
    client.messages.feedback("assistant-message-1", None)
    assert recorder.last_body() == {"rating": None}


def test_admin_routes_and_a_non_admin_refused(client, recorder):
    assert client.admin.fleet()["workers"][0]["healthy"] is True
    client.admin.override_overload(level=2)
    assert recorder.last_body() == {"level": 2}
    client.admin.override_overload(level=None, signups_open=None)
    assert recorder.last_body() == {"level": None, "signups_open": None}
    recorder.routes[("GET", "/v1/admin/fleet")] = (403, error_body("forbidden"), {})
    with pytest.raises(PermissionDeniedError):
        client.admin.fleet()


def test_a_replica_that_is_not_ready_is_an_answer_not_an_error(client, recorder, sleeps):
    readiness = client.health.ready()
    assert isinstance(readiness, Readiness) and not readiness.ready
    assert readiness.checks["redis"].startswith("failed")
    assert len(recorder.requests) == 1 and sleeps.seconds == [], "not retried"
    assert "authorization" not in recorder.last.headers


async def test_async_resources_send_the_same_requests(recorder):
    async with AsyncSurge(
        base_url="http://surge.test",
        access_token="t",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(recorder)),
    ) as client:
        assert (await client.devices.register("web", "web-push")).id == "d1"
        assert [device.id for device in await client.devices.list()] == ["d1"]
        await client.devices.delete("d1")
        assert (await client.models.list())[0].id == "deepseek-r1"
        assert (await client.me.usage()).tier == "free"
        assert (await client.messages.send("c1", "Hi!")).user_message.role == "user"
        assert (await client.messages.regenerate("assistant-message-1")).assistant_message.id == "assistant-2"
        assert (await client.messages.get("assistant-message-1")).content == "Hel"
        assert (await client.messages.cancel("assistant-message-1")).status == "cancelled"
        assert (await client.messages.feedback("assistant-message-1", "down")).feedback == "up"
        assert (await client.admin.fleet())["workers"]
        assert (await client.admin.override_overload(signups_open=False))["level"] == 2
        assert not (await client.health.ready()).ready
    paths = {(request.method, request.url.path) for request in recorder.requests}
    assert paths == set(ROUTES), "every route of the table was called"
