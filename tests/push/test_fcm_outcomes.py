"""What each FCM answer does, through firebase-admin's real send path (``messaging.send_each_async``
with a real App and service-account credentials) against a local fake of Google."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.push.dispatcher import PushDispatcher
from tests.fake_google import FakeGoogle
from tests.push.conftest import Clock, Metrics, Seed

# FCM's answer -> (device kept, sent again later, delivery status after the first pass)
OUTCOMES = {
    "UNREGISTERED": (False, False, None),
    "INVALID_ARGUMENT": (False, False, None),
    "INVALID_PAYLOAD": (True, False, "failed"),
    "QUOTA_EXCEEDED": (True, True, "pending"),
    "UNAVAILABLE": (True, True, "pending"),
    "INTERNAL": (True, True, "pending"),
    "THIRD_PARTY_AUTH_ERROR": (True, False, "failed"),
    "SENDER_ID_MISMATCH": (True, False, "failed"),
}
CODES = {
    "UNREGISTERED": "unregistered",
    "INVALID_ARGUMENT": "invalid_token",
    "INVALID_PAYLOAD": "invalid_argument",
    "QUOTA_EXCEEDED": "quota_exceeded",
    "UNAVAILABLE": "unavailable",
    "INTERNAL": "internal",
    "THIRD_PARTY_AUTH_ERROR": "third_party_auth_error",
    "SENDER_ID_MISMATCH": "sender_id_mismatch",
}


async def test_a_push_fcm_accepts_is_marked_sent_and_counted(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle, metrics: Metrics
):
    alice = await seed.user()
    device = await seed.device(alice, "token-ok")
    await seed.finished(alice)

    await dispatcher.run_once()

    assert len(fake_google.sends_to("token-ok")) == 1
    [delivery] = await seed.deliveries()
    assert (delivery.status, delivery.outcome, delivery.attempts) == ("sent", "sent", 1)
    assert await seed.device_exists(device)
    assert metrics.added("surge_push_sends_total", result="sent") == 1


async def test_the_message_carries_ids_and_the_title_and_collapses_per_conversation(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle, clock: Clock
):
    alice = await seed.user()
    await seed.device(alice, "token-payload", platform="ios")
    conversation_id, message_id = await seed.finished(alice, title="Trip plans", content="Pack light.")

    await dispatcher.run_once()

    [send] = fake_google.sends_to("token-payload")
    message = send.message
    assert send.authorization.startswith("Bearer ya29.fake-")
    assert message["data"] == {
        "type": "answer_ready",
        "conversation_id": str(conversation_id),
        "message_id": str(message_id),
    }
    assert message["notification"] == {"title": "Trip plans", "body": "Your answer is ready."}
    android = message["android"]
    assert android["priority"] == "high"
    assert android["collapse_key"] == str(conversation_id)
    assert 3500 <= int(android["ttl"].removesuffix("s")) <= 3600
    headers = message["apns"]["headers"]
    assert headers["apns-priority"] == "10"
    assert headers["apns-collapse-id"] == str(conversation_id)
    assert abs(int(headers["apns-expiration"]) - (clock.now + timedelta(hours=1)).timestamp()) < 60


async def test_the_answer_text_stays_out_of_the_notification_by_default(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle
):
    alice = await seed.user()
    await seed.device(alice, "token-private")
    await seed.finished(alice, title=None, content="My private diagnosis is ...")

    await dispatcher.run_once()

    [send] = fake_google.sends_to("token-private")
    assert "diagnosis" not in str(send.message)
    assert send.message["notification"] == {"title": "Your answer is ready", "body": "Tap to read it."}


@pytest.mark.parametrize("push_environ", [{"SURGE_PUSH_INCLUDE_TEXT": "true"}])
async def test_the_answer_text_goes_in_the_body_when_opted_in(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle
):
    alice = await seed.user()
    await seed.device(alice, "token-text")
    await seed.finished(alice, title="Trip plans", content="Pack light:\n\n" + "socks " * 100)

    await dispatcher.run_once()

    body = fake_google.sends_to("token-text")[0].message["notification"]["body"]
    assert body.startswith("Pack light: socks socks")
    assert len(body) <= 180 and body.endswith("…")


@pytest.mark.parametrize("answer", list(OUTCOMES))
async def test_each_fcm_error_decides_whether_the_token_is_kept_and_the_push_retried(
    dispatcher: PushDispatcher,
    seed: Seed,
    fake_google: FakeGoogle,
    clock: Clock,
    metrics: Metrics,
    answer: str,
):
    kept, retried, status = OUTCOMES[answer]
    token = f"token-{answer.lower()}"
    alice = await seed.user()
    device = await seed.device(alice, token)
    await seed.finished(alice)
    # Every attempt firebase-admin makes gets this answer (it re-sends a 401 after refreshing its token).
    fake_google.answer(token, answer, answer, answer)

    await dispatcher.run_once()

    assert await seed.device_exists(device) is kept
    deliveries = await seed.deliveries()
    assert [delivery.status for delivery in deliveries] == ([status] if status else [])
    if deliveries:
        assert deliveries[0].outcome == CODES[answer]
    assert metrics.added("surge_push_sends_total", result=CODES[answer]) == 1
    assert metrics.added("surge_push_tokens_deleted_total", reason=CODES[answer]) == (0 if kept else 1)
    assert metrics.added("surge_push_retries_total", code=CODES[answer]) == (1 if retried else 0)

    # Long after any back-off: only a retried push is sent again.
    sent_before = len(fake_google.sends_to(token))
    clock.advance(timedelta(minutes=30).total_seconds())
    await dispatcher.run_once()
    assert len(fake_google.sends_to(token)) == sent_before + (1 if retried else 0)


async def test_firebase_admin_tries_a_503_once_and_leaves_the_retry_to_the_outbox(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle, clock: Clock
):
    alice = await seed.user()
    await seed.device(alice, "token-503")
    await seed.finished(alice)
    fake_google.answer("token-503", "UNAVAILABLE", "UNAVAILABLE")

    await dispatcher.run_once()
    # Left to itself firebase-admin would have sent it five times, with 7 s of back-off in between.
    assert len(fake_google.sends_to("token-503")) == 1
    [delivery] = await seed.deliveries()
    # Back-off: 10 s (SURGE_PUSH_RETRY_BASE_S) with +/-20 % jitter, then twice that.
    assert timedelta(seconds=8) <= delivery.due_at - clock.now <= timedelta(seconds=12)

    clock.advance(12)
    await dispatcher.run_once()
    [delivery] = await seed.deliveries()
    assert delivery.attempts == 2
    assert timedelta(seconds=16) <= delivery.due_at - clock.now <= timedelta(seconds=24)

    clock.advance(24)
    await dispatcher.run_once()
    [delivery] = await seed.deliveries()
    assert (delivery.status, delivery.attempts) == ("sent", 3)
    assert [send.answer for send in fake_google.sends_to("token-503")] == ["UNAVAILABLE", "UNAVAILABLE", "OK"]


async def test_a_retry_after_from_fcm_is_honoured(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle, clock: Clock
):
    alice = await seed.user()
    await seed.device(alice, "token-quota")
    await seed.finished(alice)
    fake_google.answer("token-quota", "QUOTA_EXCEEDED", retry_after=120)

    await dispatcher.run_once()
    [delivery] = await seed.deliveries()
    assert delivery.due_at - clock.now >= timedelta(seconds=120)

    clock.advance(60)
    await dispatcher.run_once()
    assert len(fake_google.sends_to("token-quota")) == 1

    clock.advance(61)
    await dispatcher.run_once()
    assert [send.answer for send in fake_google.sends_to("token-quota")] == ["QUOTA_EXCEEDED", "OK"]


async def test_an_auth_error_raises_the_alert_metric_and_never_deletes_tokens(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle, metrics: Metrics
):
    alice = await seed.user()
    iphone = await seed.device(alice, "token-apns-broken", platform="ios")
    pixel = await seed.device(alice, "token-sender-wrong", platform="android")
    await seed.finished(alice)
    fake_google.answer("token-apns-broken", *["THIRD_PARTY_AUTH_ERROR"] * 3)
    fake_google.answer("token-sender-wrong", "SENDER_ID_MISMATCH")

    await dispatcher.run_once()

    assert await seed.device_exists(iphone) and await seed.device_exists(pixel)
    assert metrics.added("surge_push_auth_errors_total", code="third_party_auth_error") == 1
    assert metrics.added("surge_push_auth_errors_total", code="sender_id_mismatch") == 1
    assert metrics.added("surge_push_tokens_deleted_total", reason="third_party_auth_error") == 0


@pytest.mark.parametrize("push_environ", [{"SURGE_PUSH_MAX_ATTEMPTS": "3"}])
async def test_a_push_is_given_up_after_max_attempts(
    dispatcher: PushDispatcher, seed: Seed, fake_google: FakeGoogle, clock: Clock, metrics: Metrics
):
    alice = await seed.user()
    device = await seed.device(alice, "token-down")
    await seed.finished(alice)
    fake_google.answer("token-down", *["INTERNAL"] * 10)

    for _ in range(5):
        await dispatcher.run_once()
        clock.advance(300)

    assert len(fake_google.sends_to("token-down")) == 3
    [delivery] = await seed.deliveries()
    assert (delivery.status, delivery.attempts, delivery.outcome) == ("failed", 3, "internal")
    assert await seed.device_exists(device)
    assert metrics.added("surge_push_dropped_total", reason="gave_up") == 1
