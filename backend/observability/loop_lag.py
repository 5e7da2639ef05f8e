"""How late the event loop runs what is due: the plainest sign that a replica has more work than its core.

Every await of every request waits behind whatever the loop is busy with, so under load this lag is added
to each step of a turn (its transactions, the dispatch, the first token's way back to the phone) several
times over. CPU utilisation says the core is busy; this says how long each step waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib

from backend.observability import metrics

# Four wake-ups a second: negligible work, and enough samples for a p99 over a scrape interval.
INTERVAL_S = 0.25


class LoopLag:
    """A task that sleeps ``interval_s`` at a time and records how much later than due it woke up."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._measure(), name="surge-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _measure(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            metrics.EVENT_LOOP_LAG.observe(max(0.0, loop.time() - due))
