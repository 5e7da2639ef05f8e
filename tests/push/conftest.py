"""Push fixtures: a fake Google, firebase-admin pointed at it, dispatchers with their own clocks, and
helpers that put users, answers and devices straight into the database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.db import models as m
from backend.db.base import utcnow
from backend.firebase import build_firebase_app, close_firebase_app, use_local_endpoints
from backend.push.dispatcher import PushDispatcher
from backend.push.fcm import FcmSender
from backend.push.outbox import enqueue_completion
from backend.push.service import hash_push_token
from backend.settings import Settings
from tests.conftest import make_settings
from tests.fake_google import FakeGoogle


@pytest.fixture
def fake_google() -> Iterator[FakeGoogle]:
    fake = FakeGoogle().start()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def push_environ() -> dict[str, str]:
    """Settings a test module may override (e.g. a lower per-device limit)."""
    return {}


@pytest.fixture
def settings(
    database_url: str, tmp_path: Path, fake_google: FakeGoogle, push_environ: dict[str, str]
) -> Settings:
    return make_settings(
        database_url,
        tmp_path,
        SURGE_FCM_CREDENTIALS_FILE=str(fake_google.service_account(tmp_path)),
        SURGE_PUSH_RETRY_BASE_S="10",
        **push_environ,
    )


@pytest.fixture
async def fcm(settings: Settings, fake_google: FakeGoogle) -> AsyncIterator[FcmSender]:
    """The real FCM sender (firebase-admin's send_each_async) talking to the fake Google."""
    app = build_firebase_app(settings)
    sender = FcmSender(app)
    use_local_endpoints(app, fcm_send_url=fake_google.fcm_send_url)
    try:
        yield sender
    finally:
        await sender.aclose()
        await close_firebase_app(app)


class Clock:
    """A dispatcher's idea of now, which a test moves forward."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def dispatcher_factory(
    sessions: async_sessionmaker[AsyncSession], fcm: FcmSender, settings: Settings, clock: Clock
) -> Callable[..., PushDispatcher]:
    def make(sender: Any = None, *, clock_: Callable[[], datetime] | None = None) -> PushDispatcher:
        return PushDispatcher(sessions, sender or fcm, settings.push, clock=clock_ or clock)

    return make


@pytest.fixture
def dispatcher(dispatcher_factory: Callable[..., PushDispatcher]) -> PushDispatcher:
    return dispatcher_factory()


class Seed:
    """Rows a push test starts from, written directly (the API tests cover the routes)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._count = 0

    async def user(self) -> UUID:
        self._count += 1
        async with self.sessions() as session:
            user = m.User(email=f"push{self._count}@example.com")
            session.add(user)
            await session.commit()
            return user.id

    async def device(self, user_id: UUID, token: str, platform: str = "android") -> UUID:
        async with self.sessions() as session:
            device = m.Device(
                user_id=user_id, platform=platform, push_token=token, token_hash=hash_push_token(token)
            )
            session.add(device)
            await session.commit()
            return device.id

    async def answer(
        self, user_id: UUID, *, title: str | None = "Trip plans", content: str = "Pack light."
    ) -> tuple[UUID, UUID]:
        """A conversation with a finished assistant answer: (conversation id, message id)."""
        async with self.sessions() as session:
            conversation = m.Conversation(user_id=user_id, title=title, model="deepseek-v3.1")
            session.add(conversation)
            await session.flush()
            question = m.Message(conversation_id=conversation.id, role="user", content="?", status="complete")
            session.add(question)
            await session.flush()
            answer = m.Message(
                conversation_id=conversation.id,
                parent_id=question.id,
                role="assistant",
                content=content,
                status="complete",
                completed_at=utcnow(),
            )
            session.add(answer)
            await session.commit()
            return conversation.id, answer.id

    async def finished(self, user_id: UUID, **answer: Any) -> tuple[UUID, UUID]:
        """An answer that finished with no client attached: stored and enqueued in one transaction."""
        conversation_id, message_id = await self.answer(user_id, **answer)
        async with self.sessions() as session:
            await enqueue_completion(
                session, user_id=user_id, conversation_id=conversation_id, message_id=message_id
            )
            await session.commit()
        return conversation_id, message_id

    async def deliveries(self) -> list[m.PushDelivery]:
        async with self.sessions() as session:
            return list(await session.scalars(select(m.PushDelivery).order_by(m.PushDelivery.id)))

    async def device_exists(self, device_id: UUID) -> bool:
        async with self.sessions() as session:
            return await session.get(m.Device, device_id) is not None


@pytest.fixture
def seed(sessions: async_sessionmaker[AsyncSession]) -> Seed:
    return Seed(sessions)


def _samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in REGISTRY.collect()
        if family.name.startswith("surge_push")
        for sample in family.samples
    }


class Metrics:
    """Push counters as the test found them, to read what the test itself added (the registry is global)."""

    def __init__(self) -> None:
        self._start = _samples()

    def added(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return _samples().get(key, 0.0) - self._start.get(key, 0.0)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()
