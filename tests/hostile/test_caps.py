"""Caps on one user: WebSocket frame size, open event streams and sockets, conversations and devices
created per minute. Each refusal is a 429 with Retry-After in Surge's envelope (or its WebSocket form)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from backend.app import create_app
from loadtests.sglang_sim import run_subprocess
from tests.chat.test_websocket import ws_url
from tests.conftest import Account, error_of, make_settings, serve, sign_up, sim_config


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    error = error_of(response)
    assert error["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) == error["retry_after_s"] >= 1


@pytest.fixture
async def capped(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Account]]:
    # A worker at real speed: an answer streams for many seconds, so its streams stay open.
    with run_subprocess(sim_config(sim_speedup=1.0)) as worker:
        settings = make_settings(
            database_url,
            tmp_path,
            workers=[worker.url],
            SURGE_MAX_BODY_BYTES="4096",
            SURGE_ADMISSION_STREAMS_PER_USER="2",
            SURGE_ADMISSION_SOCKETS_PER_USER="1",
            SURGE_ADMISSION_CONVERSATIONS_PER_USER_PER_MIN="3",
            SURGE_ADMISSION_DEVICES_PER_USER_PER_MIN="2",
        )
        async with serve(create_app(settings)) as client:
            yield client, await sign_up(client)


async def test_conversations_and_devices_created_per_minute_are_capped(capped):
    client, user = capped
    created = [await client.post("/v1/conversations", json={}, headers=user.headers) for _ in range(4)]
    assert [r.status_code for r in created[:3]] == [201] * 3
    assert_rate_limited(created[3])
    devices = [
        await client.post(
            "/v1/devices", json={"platform": "ios", "push_token": f"token-{n}"}, headers=user.headers
        )
        for n in range(3)
    ]
    assert [r.status_code for r in devices[:2]] == [201] * 2
    assert_rate_limited(devices[2])


async def test_open_event_streams_per_user_are_capped(capped):
    client, user = capped
    conversation = (await client.post("/v1/conversations", json={}, headers=user.headers)).json()
    turn = await client.post(
        f"/v1/conversations/{conversation['id']}/messages", json={"content": "hi"}, headers=user.headers
    )
    events = f"/v1/messages/{turn.json()['assistant_message']['id']}/events"
    async with client.stream("GET", events, headers=user.headers) as first:
        async with client.stream("GET", events, headers=user.headers) as second:
            assert first.status_code == second.status_code == 200
            assert_rate_limited(await client.get(events, headers=user.headers))
        # A closed stream gives its place back.
        async with client.stream("GET", events, headers=user.headers) as again:
            assert again.status_code == 200


async def test_open_sockets_per_user_are_capped(capped):
    client, user = capped
    auth = json.dumps({"type": "auth", "access_token": user.access_token})
    async with connect(ws_url(client)) as first:
        await first.send(auth)
        await first.send(json.dumps({"type": "ping"}))
        assert json.loads(await first.recv())["type"] == "pong"
        async with connect(ws_url(client)) as second:
            await second.send(auth)
            refusal = json.loads(await asyncio.wait_for(second.recv(), 10))
            assert refusal["type"] == "error" and refusal["data"]["code"] == "rate_limited"
            assert refusal["data"]["retry_after_s"] >= 1
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(second.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


async def test_a_websocket_frame_over_the_body_cap_closes_the_socket(capped):
    client, user = capped
    async with connect(ws_url(client), max_size=None) as socket:
        await socket.send(json.dumps({"type": "auth", "access_token": user.access_token}))
        await socket.send(json.dumps({"type": "ping", "ref": "x" * 8192}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_a_nul_character_in_a_websocket_frame_is_a_validation_error(client, alice):
    conversation = (await client.post("/v1/conversations", json={}, headers=alice.headers)).json()
    async with connect(ws_url(client)) as socket:
        await socket.send(json.dumps({"type": "auth", "access_token": alice.access_token}))
        frame = {"type": "send", "conversation_id": conversation["id"], "content": "a\u0000b", "ref": "r"}
        await socket.send(json.dumps(frame))
        reply = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert reply["type"] == "error" and reply["data"]["code"] == "validation_error", reply
