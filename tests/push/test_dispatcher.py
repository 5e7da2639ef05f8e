"""The push outbox and its dispatchers: claims, crashes, ownership, rate limits, exactly-once per device."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.db import models as m
from backend.push.dispatcher import PushDispatcher
from backend.push.fcm import FcmSender, LoggingSender, Push, SendResult
from backend.push.outbox import enqueue_completion
from backend.push.service import DeviceService
from backend.settings import Settings
from tests.fake_google import FakeGoogle
from tests.push.conftest import Clock, Metrics, Seed


class StallingSender:
    """Stops inside ``send`` until cancelled: a process that dies after its claim committed."""

    sends = True

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def send(self, pushes: Sequence[Push], *, now: datetime | None = None) -> list[SendResult]:
        self.entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        return None


async def test_a_push_claimed_by_a_dispatcher_that_died_is_delivered_once_after_its_claim_expires(
    dispatcher_factory: Callable[..., PushDispatcher],
    seed: Seed,
    fake_google: FakeGoogle,
    clock: Clock,
    settings: Settings,
):
    alice = await seed.user()
    await seed.device(alice, "token-crash")
    await seed.finished(alice)
    stalling = StallingSender()
    doomed = dispatcher_factory(stalling)

    # The dispatcher claims (and commits the claim), then dies before FCM hears anything.
    pass_ = asyncio.create_task(doomed.run_once())
    await asyncio.wait_for(stalling.entered.wait(), 10)
    pass_.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pass_
    [delivery] = await seed.deliveries()
    assert (delivery.status, delivery.claimed_by) == ("pending", doomed.id)
    assert fake_google.sends_to("token-crash") == []

    # Another replica leaves a live claim alone...
    survivor = dispatcher_factory()
    await survivor.run_once()
    assert fake_google.sends_to("token-crash") == []

    # ...and takes it over once it has expired.
    clock.advance(settings.push.claim_ttl_s + 1)
    await survivor.run_once()
    assert len(fake_google.sends_to("token-crash")) == 1

    # The restarted process, and further passes of anyone, send nothing more.
    restarted = dispatcher_factory()
    for _ in range(3):
        clock.advance(settings.push.claim_ttl_s + 1)
        await restarted.run_once()
        await survivor.run_once()
    assert len(fake_google.sends_to("token-crash")) == 1
    [delivery] = await seed.deliveries()
    assert (delivery.status, delivery.attempts, delivery.claimed_by) == ("sent", 1, None)


async def test_only_the_answers_owner_devices_receive_it(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle
):
    alice, bob = await seed.user(), await seed.user()
    await seed.device(alice, "token-alice-phone", platform="ios")
    await seed.device(alice, "token-alice-tablet", platform="android")
    await seed.device(bob, "token-bob-phone")
    await seed.finished(alice)

    await dispatcher.run_once()

    assert len(fake_google.sends_to("token-alice-phone")) == 1
    assert len(fake_google.sends_to("token-alice-tablet")) == 1
    assert fake_google.sends_to("token-bob-phone") == []


async def test_a_device_now_owned_by_another_account_does_not_get_the_previous_owners_push(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle, sessions, clock: Clock, metrics: Metrics
):
    alice, bob = await seed.user(), await seed.user()
    device = await seed.device(alice, "token-handed-over")
    await seed.finished(alice)
    await dispatcher.expand(clock.now)
    # The phone signs in as bob (here behind the device service's back, which would also drop the push).
    async with sessions() as session:
        await session.execute(update(m.Device).where(m.Device.id == device).values(user_id=bob))
        await session.commit()

    await dispatcher.run_once()

    assert fake_google.sends_to("token-handed-over") == []
    [delivery] = await seed.deliveries()
    assert (delivery.status, delivery.outcome) == ("dropped", "device_moved")
    assert metrics.added("surge_push_dropped_total", reason="device_moved") == 1


async def test_registering_a_token_for_another_account_drops_the_pushes_it_was_owed(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle, sessions, clock: Clock
):
    alice, bob = await seed.user(), await seed.user()
    await seed.device(alice, "token-shared-ipad")
    await seed.finished(alice)
    await dispatcher.expand(clock.now)
    async with sessions() as session:
        await DeviceService(session).register(
            bob, platform="ios", push_token="token-shared-ipad", app_version=None, locale=None
        )

    await dispatcher.run_once()

    assert fake_google.sends_to("token-shared-ipad") == []
    assert await seed.deliveries() == []


@pytest.mark.parametrize("push_environ", [{"SURGE_PUSH_PER_DEVICE_PER_10MIN": "2"}])
async def test_pushes_beyond_the_per_device_rate_limit_wait_for_the_window(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle, clock: Clock, metrics: Metrics
):
    alice, bob = await seed.user(), await seed.user()
    await seed.device(alice, "token-busy")
    await seed.device(bob, "token-quiet")
    for _ in range(3):
        await seed.finished(alice)
    await seed.finished(bob)

    await dispatcher.run_once()

    assert len(fake_google.sends_to("token-busy")) == 2
    assert len(fake_google.sends_to("token-quiet")) == 1  # the limit is per device
    assert metrics.added("surge_push_deferred_total") == 1
    waiting = [delivery for delivery in await seed.deliveries() if delivery.status == "pending"]
    assert [delivery.outcome for delivery in waiting] == ["rate_limited"]

    clock.advance(5 * 60)
    await dispatcher.run_once()
    assert len(fake_google.sends_to("token-busy")) == 2

    clock.advance(5 * 60 + 1)
    await dispatcher.run_once()
    assert len(fake_google.sends_to("token-busy")) == 3
    messages = [send.message["data"]["message_id"] for send in fake_google.sends_to("token-busy")]
    assert len(set(messages)) == 3


async def test_an_answer_enqueued_twice_reaches_each_device_once(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle, sessions, clock: Clock
):
    alice = await seed.user()
    await seed.device(alice, "token-once")
    conversation_id, message_id = await seed.finished(alice)
    await dispatcher.run_once()
    async with sessions() as session:
        await enqueue_completion(
            session, user_id=alice, conversation_id=conversation_id, message_id=message_id
        )
        await session.commit()

    clock.advance(60)
    await dispatcher.run_once()

    assert len(fake_google.sends_to("token-once")) == 1


async def test_enqueue_completion_only_adds_a_row_to_the_callers_transaction(
    sessions: async_sessionmaker[AsyncSession], seed: Seed
):
    alice = await seed.user()
    conversation_id, message_id = await seed.answer(alice)
    async with sessions() as session:
        await enqueue_completion(
            session, user_id=alice, conversation_id=conversation_id, message_id=message_id
        )
        [row] = session.new
        assert isinstance(row, m.PushOutbox) and row.message_id == message_id
        async with sessions() as other:
            assert await other.scalar(select(func.count()).select_from(m.PushOutbox)) == 0
        await session.rollback()
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(m.PushOutbox)) == 0


async def test_an_answer_rolled_back_with_its_transaction_sends_nothing(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle, sessions
):
    alice = await seed.user()
    await seed.device(alice, "token-rolled-back")
    conversation_id, message_id = await seed.answer(alice)
    async with sessions() as session:
        await enqueue_completion(
            session, user_id=alice, conversation_id=conversation_id, message_id=message_id
        )
        await session.flush()
        await session.rollback()

    await dispatcher.run_once()

    assert fake_google.sends == []


async def test_an_answer_without_an_outbox_row_sends_nothing(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle
):
    # A client stayed attached to the stream, so the turn did not enqueue a push.
    alice = await seed.user()
    await seed.device(alice, "token-attached")
    await seed.answer(alice)

    await dispatcher.run_once()

    assert fake_google.sends == []


async def test_a_push_older_than_its_ttl_is_dropped_unsent(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle, clock: Clock, settings: Settings, metrics
):
    alice = await seed.user()
    await seed.device(alice, "token-stale")
    await seed.finished(alice)

    clock.advance(settings.push.ttl_s + 1)
    await dispatcher.run_once()

    assert fake_google.sends == []
    [delivery] = await seed.deliveries()
    assert (delivery.status, delivery.outcome) == ("dropped", "expired")
    assert metrics.added("surge_push_dropped_total", reason="expired") == 1


async def test_a_user_without_devices_leaves_nothing_behind(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle, sessions
):
    alice = await seed.user()
    await seed.finished(alice)

    await dispatcher.run_once()

    assert fake_google.sends == []
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(m.PushOutbox)) == 0


@pytest.mark.parametrize("push_environ", [{"SURGE_PUSH_BATCH_SIZE": "4"}])
async def test_dispatchers_running_side_by_side_send_each_push_once(
    dispatcher_factory: Callable[..., PushDispatcher], seed: Seed, fake_google: FakeGoogle
):
    users = [await seed.user() for _ in range(3)]
    for index, user in enumerate(users):
        await seed.device(user, f"token-fleet-{index}-a")
        await seed.device(user, f"token-fleet-{index}-b")
        for _ in range(4):
            await seed.finished(user)
    dispatchers = [dispatcher_factory() for _ in range(3)]

    async def drain(dispatcher: PushDispatcher) -> None:
        idle = 0
        while idle < 3:
            idle = idle + 1 if await dispatcher.run_once() == 0 else 0

    await asyncio.gather(*(drain(dispatcher) for dispatcher in dispatchers))

    sends = Counter((send.token, send.message["data"]["message_id"]) for send in fake_google.sends)
    assert len(sends) == 3 * 2 * 4
    assert set(sends.values()) == {1}


async def test_without_fcm_credentials_pushes_are_logged_by_id_and_not_sent(
    dispatcher_factory: Callable[..., PushDispatcher], seed: Seed, fake_google: FakeGoogle, caplog, metrics
):
    caplog.set_level(logging.INFO, logger="surge.push")
    alice = await seed.user()
    device = await seed.device(alice, "token-no-credentials")
    conversation_id, message_id = await seed.finished(alice)

    await dispatcher_factory(LoggingSender()).run_once()

    assert fake_google.sends == []
    [record] = [record for record in caplog.records if record.getMessage().startswith("push not sent")]
    logged: Any = record.__dict__
    assert (logged["device_id"], logged["conversation_id"], logged["message_id"]) == (
        str(device),
        str(conversation_id),
        str(message_id),
    )
    assert "token-no-credentials" not in caplog.text + str([r.__dict__ for r in caplog.records])
    [delivery] = await seed.deliveries()
    assert (delivery.status, delivery.outcome) == ("sent", "logged")
    assert metrics.added("surge_push_sends_total", result="logged") == 1


@pytest.mark.parametrize("push_environ", [{"SURGE_PUSH_INCLUDE_TEXT": "true"}])
async def test_push_logs_never_contain_push_tokens_or_message_text(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle, clock: Clock, caplog
):
    alice = await seed.user()
    tokens = ["token-secret-ok", "token-secret-gone", "token-secret-apns", "token-secret-busy"]
    for token in tokens:
        await seed.device(alice, token)
    await seed.finished(alice, title="My secret diagnosis", content="The secret answer text")
    fake_google.answer("token-secret-gone", "UNREGISTERED")
    fake_google.answer("token-secret-apns", *["THIRD_PARTY_AUTH_ERROR"] * 3)
    fake_google.answer("token-secret-busy", "UNAVAILABLE")
    # Everything at DEBUG, firebase-admin, google-auth and httpx included; aiosqlite's statement
    # parameters stay off, as configure_logging() keeps them in production.
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.WARNING, logger="aiosqlite")

    await dispatcher.run_once()
    clock.advance(60)
    await dispatcher.run_once()

    assert len(fake_google.sends) >= 5
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "FCM refused our credentials" in logged  # the alert is logged, without secrets
    for secret in (*tokens, "diagnosis", "secret answer"):
        assert secret not in logged


async def test_the_backlog_gauge_counts_pushes_waiting(
    dispatcher_factory: Callable[..., PushDispatcher], seed: Seed, clock: Clock
):
    from prometheus_client import REGISTRY

    alice = await seed.user()
    await seed.device(alice, "token-backlog-1")
    await seed.device(alice, "token-backlog-2")
    await seed.finished(alice)
    await seed.finished(alice)
    dispatcher = dispatcher_factory(StallingSender())

    await dispatcher.expand(clock.now)
    await dispatcher._maintain(clock.now)

    assert REGISTRY.get_sample_value("surge_push_outbox_backlog", {"stage": "deliveries"}) == 4
    assert REGISTRY.get_sample_value("surge_push_outbox_backlog", {"stage": "completions"}) == 0


class GatedSender:
    """Holds every send until the test opens the gate: a pass caught in the middle of talking to FCM."""

    def __init__(self, inner: FcmSender) -> None:
        self.inner = inner
        self.sends = inner.sends
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def send(self, pushes: Sequence[Push], *, now: datetime | None = None) -> list[SendResult]:
        self.entered.set()
        await self.gate.wait()
        return await self.inner.send(pushes, now=now)

    async def aclose(self) -> None:
        return None


async def test_a_stopped_dispatcher_finishes_its_pass_first(
    dispatcher_factory: Callable[..., PushDispatcher], fcm: FcmSender, seed: Seed, fake_google: FakeGoogle
):
    alice = await seed.user()
    await seed.device(alice, "token-shutdown")
    await seed.finished(alice)
    gated = GatedSender(fcm)
    dispatcher = dispatcher_factory(gated)

    dispatcher.start()
    await asyncio.wait_for(gated.entered.wait(), 10)  # the pass has claimed the push and is sending it
    stopping = asyncio.create_task(dispatcher.stop())
    done, _ = await asyncio.wait({stopping}, timeout=0.2)
    assert not done, "stop() returned while a pass was still sending"
    gated.gate.set()
    await asyncio.wait_for(stopping, 10)

    assert len(fake_google.sends_to("token-shutdown")) == 1
    [delivery] = await seed.deliveries()
    assert (delivery.status, delivery.claimed_by) == ("sent", None)
