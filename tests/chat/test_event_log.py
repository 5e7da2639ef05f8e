"""The event log's guarantees, for both implementations: numbering, replay from any offset, following
live until the terminal event, coalescing deltas into events, heartbeats when idle, who is watching; and,
with Redis, that Redis is a copy the writer can restore and survive without."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from backend.chat.event_log import EventLog, LogUnavailable, MemoryEventLog, RedisEventLog, _Feed
from backend.chat.events import TurnEvent, text_from_events
from backend.chat.layout import CONTENT, REASONING, Layout
from backend.chat.live import LiveTurn
from backend.redis_client import redis_client
from loadtests.redis_keys import drop_prefix
from tests.polling import until
from tests.services import REDIS_URL, redis_available, require

WINDOW_S = 0.02


async def redis_log(prefix: str, **options) -> tuple[RedisEventLog, aioredis.Redis]:
    client = redis_client(REDIS_URL)  # the replicas' own client: its packing carries every publication
    return RedisEventLog(client, ttl_s=60, prefix=prefix, coalesce_s=WINDOW_S, **options), client


async def forget(client: aioredis.Redis, prefix: str) -> None:
    await drop_prefix(REDIS_URL, prefix)
    await client.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def event_log(request: pytest.FixtureRequest) -> AsyncIterator[EventLog]:
    if request.param == "memory":
        yield MemoryEventLog(coalesce_s=WINDOW_S)
        return
    require("Redis", redis_available())
    prefix = f"surge-test-{uuid.uuid4().hex[:8]}"
    log, client = await redis_log(prefix)
    await log.start()
    try:
        yield log
    finally:
        await log.close()
        await forget(client, prefix)


async def collect(log: EventLog, turn: uuid.UUID, after: int) -> list[tuple[int, str]]:
    return [(e.seq, e.event) async for batch in log.follow(turn, after, heartbeat_s=5) for e in batch or ()]


@pytest.fixture
def caught_up(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Set once a follower has read everything there was and so waits for what comes next (in the writing
    process or, through the watcher's feed, in another). Without it an append made before the follower got
    that far would reach it as replay, and a test would pass without the live path being used at all."""
    waiting = asyncio.Event()
    for owner in (LiveTurn, _Feed):
        original = owner.events_after if owner is LiveTurn else owner.after

        def recording(self, *args, _original=original):  # type: ignore[no-untyped-def]
            events = _original(self, *args)
            if events == []:
                waiting.set()
            return events

        monkeypatch.setattr(owner, "events_after" if owner is LiveTurn else "after", recording)
    return waiting


async def test_events_are_numbered_from_one(event_log):
    turn = uuid.uuid4()
    entries = [await event_log.append(turn, name, {"delta": name}) for name in ("started", "content")]
    assert [entry.seq for entry in entries] == [1, 2]
    assert [(e.seq, e.event, e.payload()) for e in await event_log.read(turn, 1)] == [
        (2, "content", {"delta": "content"})
    ]
    assert (await event_log.append(turn, "done", {"message": {}})).seq == 3


async def test_following_replays_then_continues_live_until_the_terminal_event(event_log, caught_up):
    turn = uuid.uuid4()
    await event_log.append(turn, "started", {"model": "m"})
    await event_log.append(turn, "content", {"delta": "a"})
    follower = asyncio.create_task(collect(event_log, turn, 0))
    await asyncio.wait_for(caught_up.wait(), 5)
    await event_log.append(turn, "content", {"delta": "b"})
    await event_log.append(turn, "done", {"message": {}})
    assert await asyncio.wait_for(follower, 5) == [
        (1, "started"),
        (2, "content"),
        (3, "content"),
        (4, "done"),
    ]


@pytest.mark.parametrize("after", [0, 1, 2, 3])
async def test_following_after_k_yields_exactly_the_rest(event_log, after, caught_up):
    turn = uuid.uuid4()
    for name in ("started", "reasoning", "content"):
        await event_log.append(turn, name, {"delta": name} if name != "started" else {})
    follower = asyncio.create_task(collect(event_log, turn, after))
    await asyncio.wait_for(caught_up.wait(), 5)
    await event_log.append(turn, "done", {})
    assert [seq for seq, _ in await asyncio.wait_for(follower, 5)] == list(range(after + 1, 5))


async def test_deltas_within_a_window_go_out_as_one_event_per_run(event_log, caught_up):
    """SGLang sends a chunk per token; the log seals what arrived within the coalescing window into one
    event per run of one kind, and the runs add up to exactly what was sent."""
    turn = uuid.uuid4()
    live = event_log.writer(turn)
    follower = asyncio.create_task(collect_events(event_log, turn))
    await asyncio.wait_for(caught_up.wait(), 5)
    for token in ("Let", " me", " think"):
        event_log.delta(live, REASONING, token)
    for token in ("The", " answer"):
        event_log.delta(live, CONTENT, token)
    await asyncio.sleep(WINDOW_S * 5)
    event_log.delta(live, CONTENT, " is 4.")
    await asyncio.sleep(WINDOW_S * 5)
    await event_log.append(turn, "done", {})
    events = await asyncio.wait_for(follower, 5)
    assert [(e.event, e.payload()) for e in events] == [
        ("reasoning", {"delta": "Let me think"}),
        ("content", {"delta": "The answer"}),
        ("content", {"delta": " is 4."}),
        ("done", {}),
    ]
    assert [e.seq for e in events] == [1, 2, 3, 4]


async def collect_events(log: EventLog, turn: uuid.UUID, after: int = 0) -> list[TurnEvent]:
    return [e async for batch in log.follow(turn, after, heartbeat_s=5) for e in batch or ()]


async def test_a_follower_waiting_for_the_first_event_is_woken(event_log, caught_up):
    turn = uuid.uuid4()
    event_log.writer(turn)
    follower = asyncio.create_task(collect(event_log, turn, 0))
    await asyncio.wait_for(caught_up.wait(), 5)
    await event_log.append(turn, "error", {"code": "x", "message": "y"})
    # Woken by the append, not by its next heartbeat (5 s away).
    assert await asyncio.wait_for(follower, 2) == [(1, "error")]


async def test_a_pending_turns_log_goes_out_only_once_confirmed(event_log, caught_up):
    """A turn generated while its acceptance commits: its events wait in this process (no reader sees
    them, Redis has none) until ``confirm``, then go out whole and in order."""
    turn = uuid.uuid4()
    live = event_log.writer(turn, pending=True)
    event_log.note(live, "started", {"model": "m"})
    event_log.delta(live, REASONING, "Hmm")
    await event_log.append(turn, "queued", {"position": 1, "estimated_wait_s": 0})
    event_log.delta(live, CONTENT, "Hi")
    follower = asyncio.create_task(collect(event_log, turn, 0))
    await asyncio.wait_for(caught_up.wait(), 5)
    await asyncio.sleep(WINDOW_S * 5)  # windows close meanwhile: still nothing goes out
    assert await event_log.read(turn) == []
    if isinstance(event_log, RedisEventLog):
        assert not await event_log.redis.exists(event_log.key(turn))
    event_log.confirm(live)
    event_log.delta(live, CONTENT, " there")
    await asyncio.sleep(WINDOW_S * 5)
    await event_log.append(turn, "done", {})
    assert await asyncio.wait_for(follower, 5) == [
        (1, "started"),
        (2, "reasoning"),
        (3, "queued"),
        (4, "content"),
        (5, "content"),
        (6, "done"),
    ]


async def test_a_discarded_pending_turn_leaves_nothing_behind(event_log):
    turn = uuid.uuid4()
    live = event_log.writer(turn, pending=True)
    event_log.note(live, "started", {"model": "m"})
    event_log.delta(live, CONTENT, "Hi")
    event_log.discard(live)
    await asyncio.sleep(WINDOW_S * 5)
    assert event_log.live(turn) is None
    assert await event_log.read(turn) == []
    assert event_log.unpublished() == []
    if isinstance(event_log, RedisEventLog):
        assert not await event_log.redis.exists(event_log.key(turn))


async def test_an_idle_follower_gets_heartbeats(event_log):
    turn = uuid.uuid4()
    await event_log.append(turn, "started", {})
    stream = event_log.follow(turn, 1, heartbeat_s=0.05)
    assert await asyncio.wait_for(anext(stream), 2) is None
    await stream.aclose()


async def test_watchers_are_counted_while_attached(event_log):
    turn = uuid.uuid4()
    event_log.writer(turn)
    assert await event_log.watchers(turn) == 0
    async with event_log.watching(turn), event_log.watching(turn):
        assert await event_log.watchers(turn) == 2
    assert await event_log.watchers(turn) == 0


async def test_a_turn_that_ended_leaves_the_live_log(event_log):
    """Its readers then replay it from the stored row (backend.chat.stream)."""
    turn = uuid.uuid4()
    await event_log.append(turn, "started", {})
    assert event_log.live(turn) is not None
    await event_log.append(turn, "done", {})
    assert event_log.live(turn) is None


def test_a_layout_gives_back_every_event_of_the_log():
    events = [
        TurnEvent(seq=1, event="started", data=_raw({"model": "m"})),
        TurnEvent(seq=2, event="reasoning", data=_raw({"delta": "Hmm, "})),
        TurnEvent(seq=3, event="reasoning", data=_raw({"delta": "ok."})),
        TurnEvent(seq=4, event="content", data=_raw({"delta": "Ça va: "})),
        TurnEvent(seq=5, event="content", data=_raw({"delta": "oui 😀"})),
    ]
    content, reasoning = text_from_events(events)
    layout = Layout.decode(Layout.of(events).encode())
    assert list(layout.events(content, reasoning or "")) == events
    assert list(layout.events(content, reasoning or "", after=3)) == events[3:]
    assert layout.last_seq == 5


def _raw(data):
    from backend.chat.events import encode_data

    return encode_data(data)


def test_a_checkpoint_piece_is_the_text_and_layout_since_the_last_one():
    from backend.chat.live import LiveTurn

    live = LiveTurn(uuid.uuid4())
    live.add_other("started", {"model": "m"})
    live.add(REASONING, "Let me ")
    live.add(REASONING, "see.")
    live.seal()
    live.reveal()
    first = live.piece(0, live.visible)
    live.add(CONTENT, "Four.")
    live.seal()
    live.reveal()
    second = live.piece(2, live.visible)
    assert (first[0], first[1]) == ("", "Let me see.")
    assert (second[0], second[1]) == ("Four.", "")
    whole = Layout()
    whole.extend(first[2])
    whole.extend(second[2])
    replayed = list(whole.events(first[0] + second[0], first[1] + second[1]))
    assert [(e.seq, e.event, e.payload()) for e in replayed] == [
        (1, "started", {"model": "m"}),
        (2, "reasoning", {"delta": "Let me see."}),
        (3, "content", {"delta": "Four."}),
    ]


# --- Redis: a copy of the stream, not its only one ---
@pytest.mark.redis
async def test_a_second_writer_continues_the_numbering_and_a_reader_on_another_instance_follows(caught_up):
    require("Redis", redis_available())
    prefix = f"surge-test-{uuid.uuid4().hex[:8]}"
    writer, first_client = await redis_log(prefix)
    reader, second_client = await redis_log(prefix)
    await reader.start()
    try:
        turn = uuid.uuid4()
        await writer.append(turn, "started", {})
        follower = asyncio.create_task(collect(reader, turn, 0))
        await asyncio.wait_for(caught_up.wait(), 5)
        await writer.append(turn, "content", {"delta": "x"})
        # A replica taking over the turn continues where the dead one stopped.
        takeover, third_client = await redis_log(prefix)
        entry = await takeover.append(turn, "error", {"code": "interrupted", "message": ""})
        assert entry.seq == 3
        assert await asyncio.wait_for(follower, 5) == [(1, "started"), (2, "content"), (3, "error")]
        await third_client.aclose()
    finally:
        await reader.close()
        await second_client.aclose()
        await forget(first_client, prefix)


@pytest.mark.redis
async def test_a_log_redis_lost_is_published_again_by_its_writer():
    """Redis restarted (it keeps nothing on disk here): the writer still holds the turn's whole log and
    publishes it again when its next events find the stream gone."""
    require("Redis", redis_available())
    prefix = f"surge-test-{uuid.uuid4().hex[:8]}"
    writer, client = await redis_log(prefix)
    try:
        turn = uuid.uuid4()
        await writer.append(turn, "started", {})
        await writer.append(turn, "content", {"delta": "Hello"})
        await client.delete(writer.key(turn))
        await writer.append(turn, "content", {"delta": ", world"})
        stored = await client.xrange(writer.key(turn))
        assert [entry_id for entry_id, _ in stored] == [b"1-1", b"2-1", b"3-1"]
        assert text_from_events(await RedisEventLog(client, ttl_s=60, prefix=prefix).read(turn)) == (
            "Hello, world",
            None,
        )
    finally:
        await forget(client, prefix)


@pytest.mark.redis
async def test_turns_sealed_while_a_publication_is_in_flight_go_out_together_in_the_next_one():
    """Under load many turns seal at once (first tokens, notes, windows). Each is published and shown to
    its readers, in as few round trips as the publications in flight allow: not one publication (and one
    pass of the event loop on the publishing lock) per turn, which made first tokens wait seconds."""
    require("Redis", redis_available())
    prefix = f"surge-test-{uuid.uuid4().hex[:8]}"
    writer, client = await redis_log(prefix)
    calls = 0
    script = writer._publish_script

    async def counted(**kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return await script(**kwargs)

    writer._publish_script = counted  # type: ignore[assignment]
    try:
        lives = [writer.writer(uuid.uuid4()) for _ in range(50)]
        for live in lives:  # all in one pass of the event loop, as at a window's close
            writer.note(live, "started", {"model": "m"})
        await until(lambda: all(live.visible == live.sealed == 1 for live in lives), within_s=2, what="shown")
        assert all(live.visible == live.published == 1 for live in lives)
        assert calls <= 2
        for live in lives:
            assert [(e.seq, e.event) for e in await writer.read(live.turn_id)] == [(1, "started")]
    finally:
        await forget(client, prefix)


@pytest.mark.redis
async def test_while_redis_is_unreachable_local_readers_keep_reading_and_the_log_is_published_after():
    require("Redis", redis_available())
    prefix = f"surge-test-{uuid.uuid4().hex[:8]}"
    broken = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    writer = RedisEventLog(broken, ttl_s=60, prefix=prefix, coalesce_s=WINDOW_S)
    writer.RETRY_S = 0.05
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        turn = uuid.uuid4()
        live = writer.writer(turn)
        follower = asyncio.create_task(collect_events(writer, turn))
        await writer.append(turn, "started", {})
        writer.delta(live, CONTENT, "still ")
        writer.delta(live, CONTENT, "flowing")
        await asyncio.sleep(WINDOW_S * 5)
        assert not writer.durable
        assert writer.unpublished() == [live]
        await writer.append(turn, "done", {})
        events = await asyncio.wait_for(follower, 5)
        assert [(e.seq, e.event) for e in events] == [(1, "started"), (2, "content"), (3, "done")]
        # Redis is back (here: the writer's client is pointed at a working server).
        writer.redis = client
        for _ in range(100):
            if writer.durable and not writer.unpublished():
                break
            await asyncio.sleep(0.05)
        assert writer.durable and not writer.unpublished()
        stored = await RedisEventLog(client, ttl_s=60, prefix=prefix).read(turn)
        assert [(e.seq, e.event) for e in stored] == [(1, "started"), (2, "content"), (3, "done")]
    finally:
        await writer.close()
        await broken.aclose()
        await forget(client, prefix)


@pytest.mark.redis
async def test_a_reader_elsewhere_is_told_when_redis_cannot_be_reached():
    require("Redis", redis_available())
    broken = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    reader = RedisEventLog(broken, ttl_s=60, prefix="surge-test-unreachable")
    try:
        with pytest.raises(LogUnavailable):
            await reader.read(uuid.uuid4())
    finally:
        await broken.aclose()
