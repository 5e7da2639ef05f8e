"""``/v1/ws``: authenticate with the first frame, multiplex turns, survive bad frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.chat.test_turns import new_conversation


def ws_url(client) -> str:
    return str(client.base_url).replace("http://", "ws://") + "/v1/ws"


async def frames_until_done(
    socket, message_ids: set[str] | None = None, *, turns: int = 0
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Every frame until each turn has its terminal event: the ``turn`` frames by ``ref`` and the event
    frames by message id. Pass the ids to wait for, or how many ``turn`` frames announce them."""
    announced: dict[str, dict[str, Any]] = {}
    received: dict[str, list[dict[str, Any]]] = {}
    finished: set[str] = set()
    waiting = set(message_ids or ())
    while len(announced) < turns or finished != waiting:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 30))
        if frame["type"] == "turn":
            announced[frame["ref"]] = frame
            waiting.add(frame["message_id"])
            continue
        if "message_id" in frame:
            received.setdefault(frame["message_id"], []).append(frame)
            if frame["type"] in ("done", "error"):
                finished.add(frame["message_id"])
    return announced, received


async def test_two_turns_at_once_on_one_socket(client, alice):
    first, second = await new_conversation(client, alice), await new_conversation(client, alice)
    async with connect(ws_url(client)) as socket:
        await socket.send(json.dumps({"type": "auth", "access_token": alice.access_token}))
        await socket.send(
            json.dumps({"type": "send", "conversation_id": first, "content": "one", "ref": "a"})
        )
        await socket.send(
            json.dumps(
                {"type": "send", "conversation_id": second, "content": "two", "thinking": True, "ref": "b"}
            )
        )
        turns, received = await frames_until_done(socket, turns=2)
        assert turns["a"]["data"]["assistant_message"]["id"] == turns["a"]["message_id"]
        assert set(received) == {frame["message_id"] for frame in turns.values()}
    for message_id, frames in received.items():
        assert [frame["seq"] for frame in frames] == list(range(1, len(frames) + 1))
        final = frames[-1]["data"]["message"]
        content = "".join(f["data"]["delta"] for f in frames if f["type"] == "content")
        assert frames[-1]["type"] == "done" and final["content"] == content
        stored = (await client.get(f"/v1/messages/{message_id}", headers=alice.headers)).json()
        assert stored["content"] == content


async def test_subscribe_replays_after_a_seq(client, alice):
    conversation = await new_conversation(client, alice)
    turn = (
        await client.post(
            f"/v1/conversations/{conversation}/messages", json={"content": "hi"}, headers=alice.headers
        )
    ).json()
    answer = turn["assistant_message"]["id"]
    async with connect(ws_url(client)) as socket:
        await socket.send(json.dumps({"type": "auth", "access_token": alice.access_token}))
        await socket.send(json.dumps({"type": "subscribe", "message_id": answer, "after": 1}))
        frames = (await frames_until_done(socket, {answer}))[1][answer]
    assert frames[0]["seq"] == 2


async def test_malformed_frames_get_an_error_and_the_socket_stays_open(client, alice):
    async with connect(ws_url(client)) as socket:
        await socket.send(json.dumps({"type": "auth", "access_token": alice.access_token}))
        for bad in ("not json", json.dumps({"type": "teleport"}), json.dumps({"type": "send", "content": 5})):
            await socket.send(bad)
            frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
            assert frame["type"] == "error" and frame["data"]["code"] == "validation_error"
        await socket.send(
            json.dumps(
                {"type": "subscribe", "message_id": "00000000-0000-7000-8000-000000000000", "ref": "x"}
            )
        )
        frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
        assert frame == {
            "type": "error",
            "ref": "x",
            "data": {"code": "not_found", "message": frame["data"]["message"]},
        }
        await socket.send(json.dumps({"type": "ping", "ref": "p"}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 5)) == {
            "type": "pong",
            "data": {},
            "ref": "p",
        }


@pytest.mark.parametrize(
    "first_frame",
    [json.dumps({"type": "auth", "access_token": "garbage"}), json.dumps({"type": "ping"}), "hello"],
)
async def test_a_socket_without_a_valid_auth_frame_is_closed_4401(client, first_frame):
    async with connect(ws_url(client)) as socket:
        await socket.send(first_frame)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd.code == 4401


async def test_an_expired_token_closes_the_socket_4401(database_url, tmp_path, fleet):
    from backend.app import create_app
    from tests.conftest import make_settings, serve, sign_up

    app = create_app(make_settings(database_url, tmp_path, workers=fleet, SURGE_ACCESS_TOKEN_TTL_S="2"))
    async with serve(app) as client:
        alice = await sign_up(client)
        async with connect(ws_url(client)) as socket:
            await socket.send(json.dumps({"type": "auth", "access_token": alice.access_token}))

            async def drain() -> None:
                while True:
                    await asyncio.wait_for(socket.recv(), 10)

            with pytest.raises(ConnectionClosed) as closed:
                await drain()
        assert closed.value.rcvd.code == 4401
