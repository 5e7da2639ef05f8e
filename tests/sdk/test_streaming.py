"""Streams of a turn: typed events, helpers, and resuming after a drop at any point without losing or
repeating a delta (httpx.MockTransport, sync and async)."""

from __future__ import annotations

import json

import httpx
import pytest
from surge import (
    APIConnectionError,
    AsyncSurge,
    ContentEvent,
    DoneEvent,
    ErrorEvent,
    ReasoningEvent,
    Surge,
    TurnEvent,
    TurnFailedError,
)

from tests.sdk.fakes import (
    ASSISTANT_MESSAGE_ID,
    CONTENT,
    CONVERSATION_ID,
    REASONING,
    FakeTurns,
    event_stream_body,
    turn,
    turn_events,
)

BASE_URL = "http://surge.test"
FIRST_BODY = event_stream_body(turn_events(), after=0, with_turn=True)
EVENT_COUNT = len(turn_events())


def sync_client(fake: FakeTurns, **options) -> Surge:
    return Surge(
        base_url=BASE_URL,
        access_token="token",
        http_client=httpx.Client(transport=httpx.MockTransport(fake.handler)),
        **options,
    )


def async_client(fake: FakeTurns, **options) -> AsyncSurge:
    return AsyncSurge(
        base_url=BASE_URL,
        access_token="token",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)),
        **options,
    )


def offset_of(marker: str, *, occurrence: int = 1, delta: int = 0) -> int:
    """Where ``marker`` starts in the first response body (its ``occurrence``-th time), plus ``delta``."""
    encoded = marker.encode()
    position = -1
    for _ in range(occurrence):
        position = FIRST_BODY.index(encoded, position + 1)
    return position + delta


def stream_sync(fake: FakeTurns, **options) -> tuple[list, object]:
    with sync_client(fake, **options) as client, client.messages.stream(CONVERSATION_ID, "Hi!") as stream:
        events = list(stream)
    return events, stream


async def stream_async(fake: FakeTurns, **options) -> tuple[list, object]:
    async with (
        async_client(fake, **options) as client,
        client.messages.stream(CONVERSATION_ID, "Hi!") as stream,
    ):
        events = [event async for event in stream]
    return events, stream


def assert_exactly_once(events: list, fake: FakeTurns) -> None:
    """Every logged event once, in order; the deltas add up to the final message; one turn only."""
    assert isinstance(events[0], TurnEvent) and events[0].seq is None
    assert [event.seq for event in events[1:]] == list(range(1, EVENT_COUNT + 1))
    assert [event.type for event in events[1:]] == [name for name, _ in fake.events]
    content = "".join(event.delta for event in events if isinstance(event, ContentEvent))
    reasoning = "".join(event.delta for event in events if isinstance(event, ReasoningEvent))
    assert content == "".join(CONTENT) and reasoning == "".join(REASONING)
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert done.message.content == content and done.message.reasoning == reasoning
    assert all(event.message_id == ASSISTANT_MESSAGE_ID for event in events)
    assert len(fake.turns_by_key) == 1, "a resumed stream must never start a second turn"
    assert fake.closed == fake.opened, "every response the stream opened was closed"


CUT_POINTS = {
    "before the first byte": 0,
    "inside the turn event": offset_of("user_message", delta=3),
    "right after the turn event": offset_of("id: 1"),
    "between the id and the data of an event": offset_of("event: queued"),
    "inside a reasoning delta": offset_of("greets", delta=2),
    "after a ping": offset_of(": ping", delta=len(": ping\n\n")),
    "between two content events": offset_of("event: content", occurrence=2),
    "inside a multi-byte character": offset_of("🌍", delta=2),
    "just before done": FIRST_BODY.index(f"id: {EVENT_COUNT}\n".encode()),
    "inside done": offset_of('"usage"'),
    "after done's data but before its blank line": FIRST_BODY.rindex(b"}}\n\n") + 3,
    "inside a CRLF-less line end of done": FIRST_BODY.rindex(b"}}\n\n") + 2,
}


@pytest.mark.parametrize("clean", [False, True], ids=["connection-reset", "clean-end-of-stream"])
@pytest.mark.parametrize("cut", CUT_POINTS.values(), ids=CUT_POINTS.keys())
def test_sync_stream_cut_mid_answer_resumes_without_lost_or_repeated_deltas(cut, clean, sleeps):
    fake = FakeTurns(cuts=[cut], clean_cuts=clean)
    events, stream = stream_sync(fake)
    assert_exactly_once(events, fake)
    assert stream.resumes == 1


@pytest.mark.parametrize("clean", [False, True], ids=["connection-reset", "clean-end-of-stream"])
@pytest.mark.parametrize("cut", CUT_POINTS.values(), ids=CUT_POINTS.keys())
async def test_async_stream_cut_mid_answer_resumes_without_lost_or_repeated_deltas(cut, clean, sleeps):
    fake = FakeTurns(cuts=[cut], clean_cuts=clean)
    events, stream = await stream_async(fake)
    assert_exactly_once(events, fake)
    assert stream.resumes == 1


def test_resuming_asks_for_the_events_after_the_last_seq_seen(sleeps):
    fake = FakeTurns(cuts=[CUT_POINTS["inside a reasoning delta"]])
    stream_sync(fake)
    post, follow = fake.connections
    assert post.method == "POST" and json.loads(post.content)["stream"] is True
    # Cut inside the second reasoning event: the events up to the first one (seq 4) were seen.
    assert follow.method == "GET" and follow.url.params["after"] == "4"
    assert follow.headers["accept"] == "text/event-stream"


def test_a_send_cut_before_the_turn_event_is_repeated_with_the_same_idempotency_key(sleeps):
    fake = FakeTurns(cuts=[CUT_POINTS["inside the turn event"]])
    stream_sync(fake)
    first, second = fake.connections
    assert first.method == second.method == "POST"
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert len(fake.turns_by_key) == 1


def test_sync_stream_survives_a_cut_at_every_byte_of_the_first_response(sleeps):
    for cut in range(len(FIRST_BODY)):
        fake = FakeTurns(cuts=[cut])
        events, _ = stream_sync(fake)
        assert_exactly_once(events, fake)


async def test_async_stream_survives_a_cut_at_every_byte_of_the_first_response(sleeps):
    for cut in range(0, len(FIRST_BODY), 3):
        fake = FakeTurns(cuts=[cut])
        events, _ = await stream_async(fake)
        assert_exactly_once(events, fake)


def test_a_stream_cut_again_and_again_still_delivers_each_delta_once(sleeps):
    # Connection after connection breaks after an event or two, so the answer arrives in pieces.
    fake = FakeTurns(cuts=[CUT_POINTS["between the id and the data of an event"]] + [150] * 6 + [None])
    events, stream = stream_sync(fake)
    assert_exactly_once(events, fake)
    assert stream.resumes == 7
    assert sleeps.seconds == [], "a connection that brought news is resumed at once"


async def test_async_stream_cut_again_and_again_still_delivers_each_delta_once(sleeps):
    fake = FakeTurns(cuts=[CUT_POINTS["between the id and the data of an event"]] + [150] * 6 + [None])
    events, stream = await stream_async(fake)
    assert_exactly_once(events, fake)
    assert stream.resumes == 7


def test_a_stream_that_never_gets_further_gives_up_with_a_connection_error(sleeps):
    fake = FakeTurns(cuts=[offset_of("id: 3")] + [0] * 20)
    with (
        sync_client(fake, max_stream_resumes=3) as client,
        client.messages.stream(CONVERSATION_ID, "Hi!") as stream,
    ):
        seen = [next(stream) for _ in range(3)]
        with pytest.raises(APIConnectionError, match="kept breaking"):
            next(stream)
    assert [event.seq for event in seen[1:]] == [1, 2]
    assert len(sleeps.seconds) == 3 and sleeps.seconds == sorted(sleeps.seconds), (
        "backing off between attempts"
    )
    assert fake.closed == fake.opened


def test_a_jump_in_seq_makes_the_stream_fetch_the_missing_events(sleeps):
    fake = FakeTurns()
    full = fake.handler

    def skipping(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            # The first connection loses events 4 and 5 (a buggy proxy, a replica that lagged).
            fake.requests.append(request)
            fake.turns_by_key.setdefault(request.headers["idempotency-key"], turn())
            parts = event_stream_body(fake.events, after=0, with_turn=True).split(b"\n\n")
            kept = [part for part in parts if not part.startswith((b"id: 4\n", b"id: 5\n"))]
            return fake.stream_response(b"\n\n".join(kept))
        return full(request)

    with (
        Surge(
            base_url=BASE_URL,
            access_token="t",
            http_client=httpx.Client(transport=httpx.MockTransport(skipping)),
        ) as client,
        client.messages.stream(CONVERSATION_ID, "Hi!") as stream,
    ):
        events = list(stream)
    assert_exactly_once(events, fake)
    assert fake.connections[-1].url.params["after"] == "3"


def test_events_the_server_repeats_are_handed_out_once(sleeps):
    fake = FakeTurns(cuts=[offset_of("event: content", occurrence=2)])
    full = fake.handler

    def replaying_from_the_start(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            fake.requests.append(request)
            return fake.stream_response(event_stream_body(fake.events, after=0, with_turn=False))
        return full(request)

    with (
        Surge(
            base_url=BASE_URL,
            access_token="t",
            http_client=httpx.Client(transport=httpx.MockTransport(replaying_from_the_start)),
        ) as client,
        client.messages.stream(CONVERSATION_ID, "Hi!") as stream,
    ):
        events = list(stream)
    assert_exactly_once(events, fake)


def test_helpers_give_the_text_the_reasoning_and_the_final_message(sleeps):
    fake = FakeTurns()
    with sync_client(fake) as client:
        with client.messages.stream(CONVERSATION_ID, "Hi!") as stream:
            text = "".join(stream.text_stream)
            final = stream.final_message()
        assert text == "".join(CONTENT) == final.content == stream.content
        assert stream.reasoning == "".join(REASONING) == final.reasoning
        assert final.status == "complete" and final.usage is not None and final.usage.cached_tokens == 8
        assert stream.turn is not None and stream.turn.user_message.content == "Hi!"
        assert stream.message_id == ASSISTANT_MESSAGE_ID and stream.last_seq == EVENT_COUNT

        with client.messages.stream(CONVERSATION_ID, "Hi!") as stream:
            assert "".join(stream.reasoning_stream) == "".join(REASONING)
            stream.until_done()
            assert stream.content == "".join(CONTENT)


async def test_async_helpers_give_the_text_the_reasoning_and_the_final_message(sleeps):
    fake = FakeTurns(cuts=[CUT_POINTS["inside a reasoning delta"]])
    async with async_client(fake) as client:
        async with client.messages.stream(CONVERSATION_ID, "Hi!") as stream:
            text = "".join([delta async for delta in stream.text_stream])
            final = await stream.final_message()
        assert text == final.content == "".join(CONTENT)
        async with client.messages.stream(CONVERSATION_ID, "Hi!") as stream:
            reasoning = "".join([delta async for delta in stream.reasoning_stream])
            await stream.until_done()
        assert reasoning == "".join(REASONING)


def test_a_failed_turn_is_an_error_event_when_iterating_and_an_exception_from_the_helpers(sleeps):
    fake = FakeTurns(events=turn_events(terminal="error"))
    with sync_client(fake) as client:
        with client.messages.stream(CONVERSATION_ID, "Hi!") as stream:
            events = list(stream)
        assert isinstance(events[-1], ErrorEvent) and events[-1].code == "upstream_unavailable"
        with (
            client.messages.stream(CONVERSATION_ID, "Hi!") as stream,
            pytest.raises(TurnFailedError) as failure,
        ):
            "".join(stream.text_stream)
        assert failure.value.code == "upstream_unavailable" and failure.value.retry_after == 3
        assert failure.value.message_id == ASSISTANT_MESSAGE_ID
        assert stream.content == "".join(CONTENT), "the partial answer stays readable"
        with client.messages.stream(CONVERSATION_ID, "Hi!") as stream, pytest.raises(TurnFailedError):
            stream.final_message()


async def test_async_failed_turn_raises_from_final_message(sleeps):
    fake = FakeTurns(events=turn_events(terminal="error"))
    async with async_client(fake) as client, client.messages.stream(CONVERSATION_ID, "Hi!") as stream:
        with pytest.raises(TurnFailedError):
            await stream.final_message()


def test_leaving_the_stream_early_closes_its_response(sleeps):
    fake = FakeTurns()
    with sync_client(fake) as client:
        with client.messages.stream(CONVERSATION_ID, "Hi!") as stream:
            for event in stream:
                if event.type == "started":
                    break
        assert fake.opened == 1 and fake.closed == 1
        with pytest.raises(RuntimeError), client.messages.stream(CONVERSATION_ID, "Hi!"):
            raise RuntimeError("the caller's code failed")
        assert fake.opened == 2 and fake.closed == 2


async def test_async_leaving_the_stream_early_closes_its_response(sleeps):
    fake = FakeTurns()
    async with async_client(fake) as client:
        async with client.messages.stream(CONVERSATION_ID, "Hi!") as stream:
            async for event in stream:
                if event.type == "reasoning":
                    break
        assert fake.opened == fake.closed == 1


def test_events_replays_a_turn_from_a_given_seq(sleeps):
    fake = FakeTurns(cuts=[None, offset_of("event: content", occurrence=1) - 300])
    with sync_client(fake) as client, client.messages.events(ASSISTANT_MESSAGE_ID, after=6) as stream:
        events = list(stream)
    assert [event.seq for event in events] == list(range(7, EVENT_COUNT + 1))
    assert stream.content == "".join(CONTENT) and stream.reasoning == ""
    assert fake.connections[0].url.params["after"] == "6"


async def test_async_events_replays_a_turn_and_resumes(sleeps):
    fake = FakeTurns(cuts=[40, 90])
    async with async_client(fake) as client, client.messages.events(ASSISTANT_MESSAGE_ID) as stream:
        events = [event async for event in stream]
    assert [event.seq for event in events] == list(range(1, EVENT_COUNT + 1))


def test_cancel_from_a_stream_cancels_its_message(sleeps):
    fake = FakeTurns()
    with sync_client(fake) as client, client.messages.stream(CONVERSATION_ID, "Hi!") as stream:
        cancelled = stream.cancel()
        events = list(stream)
    assert cancelled.status == "cancelled"
    assert isinstance(events[0], TurnEvent), "events read ahead to learn the message id are still handed out"
    assert fake.requests[-1].url.path == f"/v1/messages/{ASSISTANT_MESSAGE_ID}/cancel"


async def test_async_cancel_from_a_stream_cancels_its_message(sleeps):
    fake = FakeTurns()
    async with async_client(fake) as client, client.messages.stream(CONVERSATION_ID, "Hi!") as stream:
        cancelled = await stream.cancel()
        events = [event async for event in stream]
    assert cancelled.status == "cancelled" and isinstance(events[0], TurnEvent)


def test_a_send_answered_with_json_is_followed_through_the_event_stream(sleeps):
    fake = FakeTurns()
    full = fake.handler

    def json_answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            fake.requests.append(request)
            fake.turns_by_key.setdefault(request.headers["idempotency-key"], turn())
            return httpx.Response(202, json=turn())
        return full(request)

    with (
        Surge(
            base_url=BASE_URL,
            access_token="t",
            http_client=httpx.Client(transport=httpx.MockTransport(json_answer)),
        ) as client,
        client.messages.stream(CONVERSATION_ID, "Hi!") as stream,
    ):
        events = list(stream)
    assert_exactly_once(events, fake)
