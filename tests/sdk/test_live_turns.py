"""The SDK's turn resources against a real Surge with simulated SGLang workers: sends, streams that
resume after their connection is cut, regenerate, cancel, feedback, models and the WebSocket session.

The suite's ``settings`` fixture gives the live Surge two simulated workers.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator

import httpx
import pytest
from surge import (
    AsyncSurge,
    ConflictError,
    ContentEvent,
    DoneEvent,
    FrameError,
    Pong,
    ReasoningEvent,
    Surge,
    TurnEvent,
)

from tests.sdk.conftest import LiveSurge
from tests.sim_faults import faults

PASSWORD = "correct horse battery"


class CuttingTransport(httpx.HTTPTransport):
    """A real HTTP transport that breaks the first ``cuts`` event streams after ``after_bytes`` bytes, as a
    phone changing networks would; the requests after that go through untouched."""

    def __init__(self, *, after_bytes: int, cuts: int = 1) -> None:
        super().__init__()
        self.after_bytes = after_bytes
        self.cuts_left = cuts
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.paths.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        if self.cuts_left and response.headers.get("content-type", "").startswith("text/event-stream"):
            self.cuts_left -= 1
            response.stream = _Cut(response.stream, self.after_bytes)  # type: ignore[arg-type]
        return response


class _Cut(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self.inner:
            if sent + len(chunk) >= self.limit:
                yield chunk[: self.limit - sent]
                raise httpx.ReadError("network changed")
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self.inner.close()


def signed_up(live: LiveSurge, **options) -> Surge:
    client = Surge(base_url=live.url, **options)
    client.auth.sign_up("ada@example.com", PASSWORD)
    return client


def assert_consistent(events: list, final) -> None:
    seqs = [event.seq for event in events if event.seq is not None]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no gap, no repeat"
    content = "".join(event.delta for event in events if isinstance(event, ContentEvent))
    reasoning = "".join(event.delta for event in events if isinstance(event, ReasoningEvent))
    assert content == final.content and content
    assert reasoning == (final.reasoning or "")
    assert isinstance(events[-1], DoneEvent) and final.status == "complete"


def test_models_list_the_configured_model(live_surge):
    with signed_up(live_surge) as client:
        (model,) = client.models.list()
    assert model.id == "deepseek-v3.1" and model.thinking == "optional"


def test_a_sent_message_is_answered_and_its_events_replay(live_surge):
    with signed_up(live_surge) as client:
        conversation = client.conversations.create()
        turn = client.messages.send(conversation.id, "Why is the sky blue?", thinking=True)
        assert turn.user_message.content == "Why is the sky blue?"
        assert turn.assistant_message.status in ("queued", "streaming")
        with client.messages.events(turn.assistant_message.id) as stream:
            events = list(stream)
        final = stream.final_message()
        assert_consistent(events, final)
        assert final.reasoning, "thinking=True gives reasoning"
        assert client.messages.get(final.id).content == final.content
        # A replay from the middle gives exactly the rest.
        with client.messages.events(final.id, after=3) as stream:
            rest = list(stream)
        assert [event.seq for event in rest] == [event.seq for event in events if event.seq > 3]


def test_a_streamed_send_gives_typed_events_and_the_final_message(live_surge):
    with signed_up(live_surge) as client:
        conversation = client.conversations.create()
        with client.messages.stream(conversation.id, "Tell me a story.") as stream:
            events = list(stream)
        assert isinstance(events[0], TurnEvent) and events[0].seq is None
        assert_consistent(events[1:], stream.final_message())
        tree = list(client.conversations.messages(conversation.id))
        assert [message.role for message in tree] == ["user", "assistant"]


def test_parent_id_none_starts_a_new_root_while_an_answer_is_still_generating(live_surge):
    with signed_up(live_surge) as client:
        conversation = client.conversations.create()
        first = client.messages.send(conversation.id, "Tell me a long story.", thinking=True)
        # Replying through the current leaf would be 409 while the first answer generates; a new root is not.
        second = client.messages.send(conversation.id, "Something else, then.", parent_id=None)
        assert second.user_message.parent_id is None
        assert second.user_message.id != first.user_message.id
        for turn in (first, second):
            with client.messages.events(turn.assistant_message.id) as stream:
                assert stream.final_message().status == "complete"


@pytest.mark.parametrize("after_bytes", [40, 400, 1500, 4000])
def test_a_stream_cut_mid_answer_resumes_from_the_last_seq(live_surge, after_bytes):
    transport = CuttingTransport(after_bytes=after_bytes, cuts=2)
    with signed_up(live_surge, http_client=httpx.Client(transport=transport, timeout=60)) as client:
        conversation = client.conversations.create()
        with client.messages.stream(conversation.id, "Explain tides.", thinking=True) as stream:
            events = list(stream)
        assert_consistent([event for event in events if event.seq is not None], stream.final_message())
        assert stream.resumes >= 1
        if after_bytes > 1000:  # past the turn event: the stream resumed from its last seq
            assert any("/events?after=" in path for path in transport.paths), transport.paths
        tree = list(client.conversations.messages(conversation.id))
        assert len(tree) == 2, "the cut send was not sent twice into two turns"


def test_regenerate_cancel_and_feedback(live_surge):
    with signed_up(live_surge) as client:
        conversation = client.conversations.create()
        first = client.messages.stream(conversation.id, "Name a colour.")
        with first:
            answer = first.final_message()
        with client.messages.stream_regenerate(answer.id) as again:
            second = again.final_message()
        assert second.id != answer.id and second.parent_id == answer.parent_id
        # Workers 50 times slower: the answer is certainly still coming when the cancel arrives.
        with faults(live_surge.settings.inference.default.workers, slowdown=50.0):
            turn = client.messages.regenerate(second.id)
            cancelled = client.messages.cancel(turn.assistant_message.id)
        assert cancelled.status == "cancelled" and cancelled.finish_reason == "cancelled"
        rated = client.messages.feedback(second.id, "up", comment="Nice.")
        assert rated.feedback == "up"
        assert client.messages.feedback(second.id, None).feedback is None


def test_cancel_from_the_stream_ends_it_cancelled(live_surge):
    with signed_up(live_surge) as client:
        conversation = client.conversations.create()
        with client.messages.stream(conversation.id, "Write a long essay.", thinking=True) as stream:
            for event in stream:
                if event.type in ("reasoning", "content"):
                    stream.cancel()
                    break
            stream.until_done()
            final = stream.final_message()
        assert final.status == "cancelled" and final.finish_reason == "cancelled"


def test_an_idempotency_key_returns_the_same_turn_and_refuses_another_body(live_surge):
    with signed_up(live_surge) as client:
        conversation = client.conversations.create()
        first = client.messages.send(conversation.id, "Hello", idempotency_key="k-1")
        again = client.messages.send(conversation.id, "Hello", idempotency_key="k-1")
        assert again.assistant_message.id == first.assistant_message.id
        with pytest.raises(ConflictError):
            client.messages.send(conversation.id, "Something else", idempotency_key="k-1")


def test_the_websocket_session_sends_subscribes_and_pings(live_surge):
    with signed_up(live_surge) as client, client.realtime() as session:
        conversation = client.conversations.create()
        ref = session.send(conversation.id, "Hi over the socket!")
        frames = []
        for frame in session:
            frames.append(frame)
            if frame.type in ("done", "error"):
                break
        assert isinstance(frames[0], TurnEvent) and frames[0].ref == ref
        assert_consistent(frames[1:], frames[-1].message)
        session.subscribe(frames[0].message_id, after=2)
        replay = []
        for frame in session:
            replay.append(frame)
            if frame.type == "done":
                break
        assert replay[0].seq == 3
        session.ping()
        assert isinstance(session.recv(timeout=10), Pong)
        session._send({"type": "subscribe", "message_id": "not-a-uuid"})
        error = session.recv(timeout=10)
        assert isinstance(error, FrameError) and error.code == "validation_error"


async def test_async_turns_streams_and_websocket(live_surge):
    async with AsyncSurge(base_url=live_surge.url) as client:
        await client.auth.sign_up("grace@example.com", PASSWORD)
        conversation = await client.conversations.create()
        async with client.messages.stream(conversation.id, "Why do cats purr?") as stream:
            text = "".join([delta async for delta in stream.text_stream])
            final = await stream.final_message()
        assert text == final.content
        turn = await client.messages.send(conversation.id, "And dogs?")
        async with client.messages.events(turn.assistant_message.id) as stream:
            events = [event async for event in stream]
        assert_consistent(events, await stream.final_message())
        assert (await client.messages.get(turn.assistant_message.id)).status == "complete"
        assert (await client.models.list())[0].id == "deepseek-v3.1"
        async with client.realtime() as session:
            await session.send(conversation.id, "One more")
            async with asyncio.timeout(30):
                while (frame := await session.recv()).type not in ("done", "error"):
                    pass
        assert frame.type == "done"


@pytest.fixture
def short_token_surge(database_url, tmp_path, fleet) -> Iterator[LiveSurge]:
    """A live Surge whose access tokens last two seconds."""
    from tests.conftest import make_settings
    from tests.sdk.conftest import serve_live

    settings = make_settings(database_url, tmp_path, workers=fleet, SURGE_ACCESS_TOKEN_TTL_S="2")
    with serve_live(settings) as live:
        yield live


def test_the_websocket_outlives_its_access_token(short_token_surge):
    with signed_up(short_token_surge) as client, client.realtime() as session:
        conversation = client.conversations.create()
        answers = []
        for question in ("First question", "Second question, after the token expired"):
            session.send(conversation.id, question)
            while (frame := session.recv(timeout=30)).type not in ("done", "error"):
                pass
            answers.append(frame)
            time.sleep(2.5)  # the access token expires; the server would close the socket with 4401
        assert [answer.type for answer in answers] == ["done", "done"]
        assert client.me.get().email == "ada@example.com", "the HTTP side refreshed too"


def test_surge_chat_streams_an_answer_with_its_reasoning_dimmed(live_surge, tmp_path):
    from surge.chat import main

    from tests.sdk.test_chat import scripted

    arguments = ["--base-url", live_surge.url, "--session-file", str(tmp_path / "s.json")]
    arguments += ["--email", "ada@example.com", "--new", "--thinking", "--color"]
    out = io.StringIO()
    code = main(
        arguments,
        out=out,
        read_line=scripted("y", "Why is the sky blue?", "/retry", "/quit"),
        read_password=lambda prompt: PASSWORD,
    )
    text = out.getvalue()
    assert code == 0, text
    assert text.count("\x1b[2mthinking: ") == 2, "the answer and its regeneration, reasoning dimmed"
    assert text.count("surge>") >= 2 and "failed" not in text
