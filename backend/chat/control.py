"""Cancelling a turn from any replica: the request reaches whichever replica is generating it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

logger = logging.getLogger("surge.chat")
CancelHandler = Callable[[UUID], Awaitable[None]]


class ControlChannel(Protocol):
    async def request_cancel(self, turn_id: UUID) -> None: ...

    async def start(self, on_cancel: CancelHandler) -> None: ...

    async def close(self) -> None: ...


class LocalControlChannel:
    """One process: the request goes straight to its own runner."""

    def __init__(self) -> None:
        self._on_cancel: CancelHandler | None = None

    async def request_cancel(self, turn_id: UUID) -> None:
        if self._on_cancel is not None:
            await self._on_cancel(turn_id)

    async def start(self, on_cancel: CancelHandler) -> None:
        self._on_cancel = on_cancel

    async def close(self) -> None:
        self._on_cancel = None


class RedisControlChannel:
    """Several replicas: a Redis pub/sub channel every replica listens to; the owner acts on it."""

    def __init__(self, redis: aioredis.Redis, *, channel: str = "surge:control:cancel") -> None:
        self.redis = redis
        self.channel = channel
        self._listener: asyncio.Task[None] | None = None
        self._stopping = False

    async def request_cancel(self, turn_id: UUID) -> None:
        """Best effort: with Redis away the request reaches nobody, and the caller ends the turn itself."""
        try:
            await self.redis.publish(self.channel, str(turn_id))
        except (RedisError, OSError) as exc:
            logger.warning("cancel channel unreachable", extra={"error": type(exc).__name__})

    async def start(self, on_cancel: CancelHandler) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel)

        async def listen() -> None:
            while not self._stopping:
                try:
                    message = await pubsub.get_message(timeout=1.0)
                except RedisError:
                    logger.warning("control channel lost its Redis connection; resubscribing")
                    await asyncio.sleep(1.0)
                    with contextlib.suppress(RedisError):
                        await pubsub.subscribe(self.channel)
                    continue
                if message and message.get("type") == "message":
                    try:
                        await on_cancel(UUID(message["data"].decode()))
                    except ValueError:
                        continue
            with contextlib.suppress(RedisError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

        self._listener = asyncio.create_task(listen(), name="surge-control-channel")

    async def close(self) -> None:
        # Like the event log's watcher: let the blocking read time out rather than cancel it mid-read.
        self._stopping = True
        if self._listener is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listener, 3.0)
