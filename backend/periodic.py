"""Background work repeated every few seconds for the life of a replica (health checks, checkpoints,
the admission tick): one failing round is logged and the next one runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


class Periodic:
    def __init__(
        self,
        name: str,
        interval_s: float,
        work: Callable[[], Awaitable[None]],
        *,
        logger: logging.Logger,
        failure: str,
    ) -> None:
        self.name = name
        self.interval_s = interval_s
        self.work = work
        self.logger = logger
        self.failure = failure
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.work()
            except Exception:
                self.logger.exception(self.failure)
