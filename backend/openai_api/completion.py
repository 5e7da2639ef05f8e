"""One request's generation on a worker: started before the response (so that a failure before the first
token is still an HTTP status), then read item by item, and closed exactly once — aborting the SGLang
request when the caller went away first. Here the caller owns the connection: unlike a conversation turn,
nobody else will ever read the answer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import anyio

from backend.errors import UpstreamUnavailable, ValidationFailed
from backend.inference.client import SGLangClient
from backend.inference.policies import Outcome, RouteRequest
from backend.inference.pool import Dispatch, WorkerPool
from backend.inference.wire import ChatRequest, Delta, Finish, UpstreamError, Usage


@dataclass(frozen=True, slots=True)
class End:
    """The worker's stream ended: cleanly, or with ``error``."""

    error: UpstreamError | None = None


Item = Delta | Finish | Usage | End


class QueueSink:
    """A ``StreamSink`` that queues the items for the response to read (called from the I/O callback)."""

    __slots__ = ("queue",)

    def __init__(self, queue: asyncio.Queue[Item]) -> None:
        self.queue = queue

    def delta(self, item: Delta) -> None:
        self.queue.put_nowait(item)

    def finish(self, item: Finish) -> None:
        self.queue.put_nowait(item)

    def usage(self, item: Usage) -> None:
        self.queue.put_nowait(item)


@dataclass(frozen=True, slots=True)
class Timeouts:
    first_token_s: float
    token_gap_s: float
    attempts: int


@dataclass(eq=False)
class Completion:
    client: SGLangClient
    pool: WorkerPool
    request: ChatRequest
    route: RouteRequest
    timeouts: Timeouts
    queue: asyncio.Queue[Item] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    dispatch: Dispatch | None = None
    first: Item | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    deltas: int = 0
    # Reached a worker's first token / ended cleanly / failed mid-way.
    reached: bool = False
    done: bool = False
    failed: bool = False

    @property
    def status(self) -> str:
        """How it ended, for the usage row: complete, cancelled (the caller left) or failed."""
        if self.done:
            return "complete"
        return "cancelled" if self.reached and not self.failed else "failed"

    @property
    def worker(self) -> str | None:
        return self.dispatch.worker.url if self.dispatch is not None else None

    async def start(self) -> None:
        """Put the request on a worker and wait for its first item; a worker that fails before it is
        replaced by another (up to ``attempts``), as for turns."""
        tried: set[str] = set()
        while True:
            dispatch = self.pool.dispatch(self.route, exclude=frozenset(tried))
            if dispatch is None:
                raise UpstreamUnavailable(retry_after_s=5)
            tried.add(dispatch.worker.url)
            self._launch(dispatch, attempt=len(tried))
            first = await self._next(self.timeouts.first_token_s)
            if not isinstance(first, End) or first.error is None:
                self.first, self.reached = first, True
                dispatch.first_token()  # the prefill it was routed with is done
                return
            await self._stop_upstream()  # a worker that timed out may still be generating
            dispatch.release(None, worker_failed=first.error.retryable)
            self.dispatch = None
            if not first.error.retryable:
                raise ValidationFailed(f"The model refused the request: {first.error.message}")
            if len(tried) >= self.timeouts.attempts:
                raise UpstreamUnavailable("The model could not be reached; retry later.", retry_after_s=5)

    def _launch(self, dispatch: Dispatch, *, attempt: int) -> None:
        self.dispatch = dispatch
        if attempt > 1:  # a worker never sees one rid twice
            self.request = replace(self.request, rid=f"{self.request.rid.split('~')[0]}~{attempt}")
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._stream(dispatch.worker.url, self.queue))

    async def _stream(self, worker: str, queue: asyncio.Queue[Item]) -> None:
        try:
            await self.client.stream_chat(worker, self.request, QueueSink(queue))
        except UpstreamError as error:
            queue.put_nowait(End(error))
        else:
            queue.put_nowait(End())

    async def _next(self, timeout_s: float) -> Item:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return End(UpstreamError("no token within the timeout"))

    async def items(self) -> AsyncIterator[Delta | Finish]:
        """The answer's deltas and finish reason; raises ``UpstreamError`` if the worker fails mid-way."""
        item, self.first = self.first, None
        while True:
            if item is None:
                item = await self._next(self.timeouts.token_gap_s)
            if isinstance(item, End):
                self.done = item.error is None
                if item.error is not None:
                    self.failed = True
                    raise item.error
                return
            if isinstance(item, Usage):
                self.usage = item
            else:
                if isinstance(item, Finish):
                    self.finish_reason = item.reason
                else:
                    self.deltas += 1
                yield item
            item = None

    async def close(self) -> None:
        """Release the worker; if the stream is still running (the caller went away), stop it and tell
        SGLang to abort the request, so that it stops using the worker. Shielded: it runs in the ``finally``
        of a response whose client disconnected, where everything else is being cancelled."""
        with anyio.CancelScope(shield=True):
            await self._stop_upstream()
            if self.dispatch is not None:
                self.dispatch.release(self._outcome(self.dispatch) if self.done else None)
                self.dispatch = None

    async def _stop_upstream(self) -> None:
        """Stop reading a stream that is still running and have the worker abort the request."""
        task, dispatch = self.task, self.dispatch
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, UpstreamError):
            await task
        if dispatch is not None:
            await self.client.abort(dispatch.worker.url, self.request.rid)

    def _outcome(self, dispatch: Dispatch) -> Outcome:
        usage = self.usage
        return Outcome(
            prompt_tokens=usage.prompt_tokens if usage else 0,
            cached_tokens=usage.cached_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else self.deltas,
            duration_s=time.time() - dispatch.started_at,
        )
