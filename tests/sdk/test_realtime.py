"""The WebSocket session against a fake ``/v1/ws`` on a real socket: typed frames, and resuming after the
socket drops or the token expires without losing, repeating or re-sending a turn (sync and async)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import msgspec
import pytest
from surge import (
    AsyncSurge,
    ContentEvent,
    Credentials,
    DoneEvent,
    FrameError,
    MemoryTokenStore,
    Pong,
    RealtimeError,
    Surge,
    TurnEvent,
)
from surge._realtime import websocket_url

from tests.sdk.fake_realtime import FakeRealtime, Fault
from tests.sdk.fakes import CONTENT, session_body, turn_events

EVENT_COUNT = len(turn_events())


@pytest.fixture
def fake_ws() -> Iterator[FakeRealtime]:
    server = FakeRealtime().start()
    yield server
    server.stop()


class Refresher:
    """The HTTP side of the client: answers refreshes, and tells the fake socket about the new token."""

    def __init__(self, fake: FakeRealtime) -> None:
        self.fake = fake
        self.refreshes = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/auth/refresh"
        self.refreshes += 1
        token = f"access-{self.refreshes + 1}"
        self.fake.valid_tokens.add(token)  # the old token keeps working until it expires, as a JWT does
        return httpx.Response(200, json=session_body(token, f"refresh-{self.refreshes + 1}"))


def sync_client(fake: FakeRealtime, refresher: Refresher | None = None, **options) -> Surge:
    store = MemoryTokenStore(Credentials(access_token="access-1", refresh_token="refresh-1"))
    transport = httpx.MockTransport(refresher or Refresher(fake))
    return Surge(
        base_url=fake.base_url, token_store=store, http_client=httpx.Client(transport=transport), **options
    )


def async_client(fake: FakeRealtime, refresher: Refresher | None = None, **options) -> AsyncSurge:
    store = MemoryTokenStore(Credentials(access_token="access-1", refresh_token="refresh-1"))
    transport = httpx.MockTransport(refresher or Refresher(fake))
    return AsyncSurge(
        base_url=fake.base_url,
        token_store=store,
        http_client=httpx.AsyncClient(transport=transport),
        **options,
    )


def until_done(frames: Iterator) -> list:
    collected = []
    for frame in frames:
        collected.append(frame)
        if frame.type in ("done", "error"):
            return collected
    raise AssertionError("the session ended before the turn did")


def assert_one_turn_exactly_once(frames: list, fake: FakeRealtime, ref: str) -> None:
    assert isinstance(frames[0], TurnEvent) and frames[0].ref == ref
    assert frames[0].message_id == "assistant-1"
    assert [frame.seq for frame in frames[1:]] == list(range(1, EVENT_COUNT + 1))
    assert "".join(frame.delta for frame in frames if isinstance(frame, ContentEvent)) == "".join(CONTENT)
    assert isinstance(frames[-1], DoneEvent) and frames[-1].message.content == "".join(CONTENT)
    assert len(fake.turns_by_key) == 1, "never a second turn"


def test_websocket_url_follows_the_base_url():
    assert websocket_url("http://127.0.0.1:8000/") == "ws://127.0.0.1:8000/v1/ws"
    assert websocket_url("https://api.example.com/surge") == "wss://api.example.com/surge/v1/ws"


def test_a_send_streams_its_turn_as_typed_frames(fake_ws):
    with sync_client(fake_ws) as client, client.realtime() as session:
        ref = session.send("c1", "Hi!", thinking=True, ref="first")
        frames = until_done(iter(session))
    assert ref == "first"
    assert_one_turn_exactly_once(frames, fake_ws, "first")
    assert fake_ws.auth_tokens == ["access-1"]
    (send,) = fake_ws.sent_of("send")
    assert send["conversation_id"] == "c1" and send["content"] == "Hi!" and send["thinking"] is True
    assert send["idempotency_key"].startswith("surge-sdk-")
    assert "parent_id" not in send, "left out: the server continues the current branch"
    assert session.reconnects == 0


def test_a_send_with_parent_id_none_asks_for_a_new_root(fake_ws):
    with sync_client(fake_ws) as client, client.realtime() as session:
        session.send("c1", "Hi!", parent_id=None)
        until_done(iter(session))
    (send,) = fake_ws.sent_of("send")
    assert "parent_id" in send and send["parent_id"] is None


async def test_async_a_send_streams_its_turn_as_typed_frames(fake_ws):
    async with async_client(fake_ws) as client, client.realtime() as session:
        ref = await session.send("c1", "Hi!")
        frames = []
        async for frame in session:
            frames.append(frame)
            if frame.type == "done":
                break
    assert_one_turn_exactly_once(frames, fake_ws, ref)


@pytest.mark.parametrize("dropped_after", [0, 1, 5, EVENT_COUNT], ids=lambda n: f"after-{n}-frames")
def test_a_dropped_socket_is_reopened_and_the_turn_resumed_exactly_once(fake_ws, dropped_after, sleeps):
    fake_ws.faults = [Fault(after_frames=dropped_after)]
    with sync_client(fake_ws) as client, client.realtime() as session:
        ref = session.send("c1", "Hi!")
        frames = until_done(iter(session))
    assert_one_turn_exactly_once(frames, fake_ws, ref)
    assert session.reconnects == 1 and fake_ws.connections == 2
    if dropped_after == 0:
        # The send was lost with the socket: sent again, with the same key.
        first, second = fake_ws.sent_of("send")
        assert first["idempotency_key"] == second["idempotency_key"]
    else:
        (subscribe,) = fake_ws.sent_of("subscribe")
        assert subscribe == {"type": "subscribe", "message_id": "assistant-1", "after": dropped_after - 1}


@pytest.mark.parametrize("dropped_after", [0, 4], ids=lambda n: f"after-{n}-frames")
async def test_async_a_dropped_socket_is_reopened_and_the_turn_resumed_exactly_once(
    fake_ws, dropped_after, sleeps
):
    fake_ws.faults = [Fault(after_frames=dropped_after), Fault(after_frames=3)]
    async with async_client(fake_ws) as client, client.realtime() as session:
        ref = await session.send("c1", "Hi!")
        frames = []
        while not frames or frames[-1].type != "done":
            frames.append(await session.recv())
    assert_one_turn_exactly_once(frames, fake_ws, ref)
    assert session.reconnects == 2


def test_an_expired_token_is_refreshed_and_the_session_goes_on(fake_ws, sleeps):
    fake_ws.faults = [Fault(after_frames=4, close_code=4401)]
    refresher = Refresher(fake_ws)
    with sync_client(fake_ws, refresher) as client, client.realtime() as session:
        ref = session.send("c1", "Hi!")
        frames = until_done(iter(session))
    assert_one_turn_exactly_once(frames, fake_ws, ref)
    assert refresher.refreshes == 1
    assert fake_ws.auth_tokens == ["access-1", "access-2"]


async def test_async_an_expired_token_is_refreshed_and_the_session_goes_on(fake_ws, sleeps):
    fake_ws.faults = [Fault(after_frames=6, close_code=4401)]
    refresher = Refresher(fake_ws)
    async with async_client(fake_ws, refresher) as client, client.realtime() as session:
        ref = await session.send("c1", "Hi!")
        frames = []
        while not frames or frames[-1].type != "done":
            frames.append(await session.recv())
    assert_one_turn_exactly_once(frames, fake_ws, ref)
    assert refresher.refreshes == 1 and fake_ws.auth_tokens[-1] == "access-2"


def test_subscribe_follows_a_turn_from_a_seq_and_cancel_and_ping_are_sent(fake_ws):
    with sync_client(fake_ws) as client, client.realtime() as session:
        session.subscribe("assistant-7", after=EVENT_COUNT - 3)
        frames = until_done(iter(session))
        session.cancel("assistant-7")
        session.ping()
        assert isinstance(session.recv(timeout=5), Pong)
    assert [frame.seq for frame in frames] == [EVENT_COUNT - 2, EVENT_COUNT - 1, EVENT_COUNT]
    assert {frame.message_id for frame in frames} == {"assistant-7"}
    assert fake_ws.sent_of("cancel") == [{"type": "cancel", "message_id": "assistant-7"}]


async def test_async_a_bad_frame_gets_a_frame_error_and_the_socket_stays_open(fake_ws):
    async with async_client(fake_ws) as client, client.realtime() as session:
        await session._send({"type": "bogus"})
        error = await session.recv()
        assert isinstance(error, FrameError) and error.type == "frame_error"
        assert error.code == "validation_error" and "bogus" in error.message
        await session.ping()
        assert isinstance(await session.recv(), Pong)


def test_a_session_that_cannot_reconnect_gives_up(fake_ws, sleeps):
    with sync_client(fake_ws, max_stream_resumes=2) as client, client.realtime() as session:
        fake_ws.stop()
        session._ws.close()  # the server is gone, and so is the socket
        with pytest.raises(RealtimeError):
            session.recv(timeout=5)
    assert len(sleeps.seconds) == 2


def test_a_closed_session_cannot_be_used(fake_ws):
    with sync_client(fake_ws) as client:
        session = client.realtime()
        session.connect()
        session.close()
        with pytest.raises(RealtimeError):
            session.ping()


def test_the_first_frame_authenticates_with_a_fresh_token(fake_ws):
    fake_ws.valid_tokens = {"access-2"}
    store = MemoryTokenStore(Credentials(access_token="access-1", refresh_token="refresh-1", expires_at=0))
    refresher = Refresher(fake_ws)
    with (
        Surge(
            base_url=fake_ws.base_url,
            token_store=store,
            http_client=httpx.Client(transport=httpx.MockTransport(refresher)),
        ) as client,
        client.realtime() as session,
    ):
        session.ping()
        assert isinstance(session.recv(timeout=5), Pong)
    assert refresher.refreshes == 1 and fake_ws.auth_tokens == ["access-2"]
    assert json.loads(json.dumps(fake_ws.received[0])) == {"type": "ping"}


def test_a_token_about_to_expire_is_renewed_on_the_open_socket(fake_ws):
    refresher = Refresher(fake_ws)
    with sync_client(fake_ws, refresher) as client, client.realtime() as session:
        session.ping()
        assert isinstance(session.recv(timeout=5), Pong)
        # The token is now in its last seconds: the next call refreshes it and sends it on the socket.
        credentials = client.tokens.credentials
        client.tokens.set(msgspec.structs.replace(credentials, expires_at=time.time() + 1))
        session.ping()
        assert isinstance(session.recv(timeout=5), Pong)
    assert refresher.refreshes == 1
    assert fake_ws.auth_tokens == ["access-1", "access-2"]
    assert fake_ws.connections == 1, "no reconnection needed"
    assert fake_ws.sent_of("auth") == [{"type": "auth", "access_token": "access-2"}]


async def test_async_a_token_about_to_expire_is_renewed_on_the_open_socket(fake_ws):
    refresher = Refresher(fake_ws)
    async with async_client(fake_ws, refresher) as client, client.realtime() as session:
        client.tokens.set(msgspec.structs.replace(client.tokens.credentials, expires_at=time.time() + 1))
        await session.ping()
        assert isinstance(await session.recv(), Pong)
    assert refresher.refreshes == 1 and fake_ws.auth_tokens == ["access-1", "access-2"]
    assert fake_ws.connections == 1


def test_a_cancel_lost_with_the_socket_is_sent_again(fake_ws, sleeps):
    # The socket drops after the turn frame and two events: the cancel sent then is lost with it.
    fake_ws.faults = [Fault(after_frames=3)]
    with sync_client(fake_ws) as client, client.realtime() as session:
        session.send("c1", "Hi!")
        turn_frame = session.recv(timeout=5)
        session.recv(timeout=5)
        session.recv(timeout=5)
        session.cancel(turn_frame.message_id)
        frames = until_done(iter(session))
        # The fake reads a socket's frames in order and only after streaming the turn to `done`: its pong
        # shows it has read the cancel that went before the ping (the session's end does not wait for it).
        session.ping()
        assert isinstance(session.recv(timeout=5), Pong)
    assert frames[-1].type == "done"
    cancels = fake_ws.sent_of("cancel")
    assert cancels and all(frame == {"type": "cancel", "message_id": "assistant-1"} for frame in cancels)
    assert fake_ws.connections == 2
    assert any(frame["type"] == "cancel" for frame in fake_ws.received[-3:]), "repeated on the new socket"
