"""What a streamed answer holds (the fair queue's slot, the worker, the running count, the usage row) is
released exactly once: when the stream ends, when its client hangs up — or, should the server never start
sending it (the client left between the handler's return and the first byte, so the body's iterator is
never entered), after a grace period."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import anyio

# Far longer than a response takes to start, far shorter than a held slot would be missed.
START_GRACE_S = 10.0


class OwnedStream:
    def __init__(
        self, stack: contextlib.AsyncExitStack, body: AsyncIterator[bytes], *, grace_s: float = START_GRACE_S
    ) -> None:
        self._stack = stack
        self._body = body
        self._started = False
        self._closed = False
        self._timer = asyncio.get_running_loop().call_later(grace_s, self._if_abandoned)
        self._closing: asyncio.Task[None] | None = None

    async def lines(self) -> AsyncIterator[bytes]:
        self._started = True
        self._timer.cancel()
        try:
            if self._closed:
                return
            async for line in self._body:
                yield line
        finally:
            await self.close()

    async def close(self) -> None:
        """Release everything once. Shielded: when the client hangs up, the response's task group is
        cancelled around this, and the abort upstream and the usage row must still happen."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._stack.aclose()

    def _if_abandoned(self) -> None:
        if not self._started:
            self._closing = asyncio.create_task(self.close(), name="surge-openai-abandoned-stream")
