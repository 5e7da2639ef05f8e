"""Generation of turns, owned by this replica and not by any HTTP connection.

A turn's task renders the prompt, asks the pool for a worker, streams from SGLang into the turn's event
log, checkpoints the partial text about once a second, and stores the final answer. A client may come
and go at any point; the answer is generated once either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.admission.controller import AdmissionController, QueueTimeout
from backend.chat.event_log import EventLog
from backend.chat.events import TurnEvent
from backend.chat.layout import CONTENT, REASONING
from backend.chat.live import LiveTurn
from backend.chat.prompt import Prompt, render_prompt
from backend.chat.store import Chunk, TurnStore
from backend.chat.turn import Status, Turn, TurnEnding, TurnFailed
from backend.conversations.tree import MessageTree
from backend.db import models as m
from backend.inference.client import SGLangClient
from backend.inference.policies import Outcome, PreviousTurn, RouteRequest
from backend.inference.pool import Dispatch, WorkerPool
from backend.inference.wire import ChatRequest, Delta, Finish, UpstreamError, Usage
from backend.observability import metrics
from backend.periodic import Periodic
from backend.settings import ChatSettings

logger = logging.getLogger("surge.chat")
# A turn taking longer than this from acceptance to its worker, besides the fair queue, is logged.
SLOW_START_S = 1.0

# Room left in the context beyond the prompt and the answer budget (template tokens, estimate error).
CONTEXT_MARGIN_TOKENS = 512


def previous_turn(branch: list[m.Message]) -> PreviousTurn | None:
    """The answer before the turn being generated, if it finished: where its prefix should be cached."""
    answers = [message for message in branch if message.role == "assistant"]
    if not answers:
        return None
    last = answers[-1]
    if not last.worker or last.prompt_tokens is None or last.completed_at is None:
        return None
    return PreviousTurn(
        worker=last.worker,
        prompt_tokens=last.prompt_tokens,
        answer_tokens=max(0, (last.completion_tokens or 0) - (last.reasoning_tokens or 0)),
        thinking=bool(last.thinking),
        finished_at=last.completed_at.timestamp(),
    )


@dataclass(eq=False, slots=True)
class Generation:
    """The live state of one turn being generated here."""

    turn: Turn
    # The turn's event log as this process writes it: its text too.
    live: LiveTurn
    worker: str | None = None
    rid: str | None = None
    attempts: int = 0
    started_at: datetime | None = None
    first_token_at: datetime | None = None
    first_token_clock: float | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    announced: bool = False
    cancel_requested: bool = False
    # Set once the answer is being stored: a cancel arriving then changes nothing.
    finishing: bool = False
    dispatch: Dispatch | None = None
    # The row has yet to learn that the turn reached a worker (status, worker, timings).
    unmarked: bool = False
    # The last seq written to a checkpoint (only while the event log cannot hold the stream).
    checkpointed_seq: int = 0
    checkpointed: bool = False
    task: asyncio.Task[None] | None = None
    # The conversation up to the user message, read when the turn was accepted (dropped once rendered).
    branch: list[m.Message] | None = None
    # Wall-clock times of the steps between acceptance and the worker, for the slow-start warning.
    marks: dict[str, float] = field(default_factory=dict)
    # Started before its acceptance was committed: set once that is settled (``confirm`` or ``discard``);
    # until then the turn's events stay in this process and nothing of it is stored.
    settled: asyncio.Event | None = None
    # The acceptance failed: the turn never existed, and is dropped without a trace.
    discarded: bool = False

    @property
    def pending(self) -> bool:
        """Its acceptance is not settled yet (and, once discarded, never will be)."""
        return self.settled is not None and (not self.settled.is_set() or self.discarded)

    @property
    def has_output(self) -> bool:
        return self.live.has_text

    def text(self) -> tuple[str, str | None]:
        return self.live.text()


class Relay:
    """Where a worker's stream goes (a ``StreamSink``): into the turn's live log, as the chunks arrive."""

    __slots__ = ("add", "deadline", "gap", "generation", "live", "loop", "pushed_at", "runner")

    def __init__(self, runner: TurnRunner, generation: Generation) -> None:
        self.runner, self.generation, self.live = runner, generation, generation.live
        self.add = runner.event_log.delta
        self.loop = asyncio.get_running_loop()
        self.gap = runner.settings.token_gap_timeout_s
        self.deadline: asyncio.Timeout | None = None
        self.pushed_at = 0.0

    def delta(self, item: Delta) -> None:
        if self.generation.first_token_at is None:
            self.runner._first_token(self.generation)
        now = self.loop.time()
        if now - self.pushed_at > self.gap / 2 and self.deadline is not None:
            self.deadline.reschedule(now + self.gap)
            self.pushed_at = now
        if item.reasoning:
            self.add(self.live, REASONING, item.reasoning)
        if item.content:
            self.add(self.live, CONTENT, item.content)

    def finish(self, item: Finish) -> None:
        self.generation.finish_reason = item.reason

    def usage(self, item: Usage) -> None:
        self.generation.usage = item


class TurnRunner:
    """Starts, cancels and finishes the turns this replica owns."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        store: TurnStore,
        event_log: EventLog,
        pool: WorkerPool,
        client: SGLangClient,
        settings: ChatSettings,
        replica_id: UUID,
        shutdown_grace_s: float,
        admission: AdmissionController,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.event_log = event_log
        self.pool = pool
        self.client = client
        self.settings = settings
        self.replica_id = replica_id
        self.shutdown_grace_s = shutdown_grace_s
        self.admission = admission
        self.running: dict[UUID, Generation] = {}
        # Work started after a turn completed, outside any transaction (conversation titles).
        self.on_complete: list[Callable[[Turn], None]] = []
        self._checkpointer = Periodic(
            "surge-checkpoints",
            settings.checkpoint_interval_s,
            self.checkpoint,
            logger=logger,
            failure="checkpointing streaming turns failed; retrying next interval",
        )

    # --- lifecycle ---
    def start(
        self,
        turn: Turn,
        prefix: Sequence[TurnEvent] = (),
        branch: list[m.Message] | None = None,
        *,
        pending: bool = False,
        opening: Sequence[tuple[str, object]] = (),
    ) -> None:
        """Generate ``turn`` here. ``prefix``: events another replica wrote before it died (a re-run);
        ``branch``: the conversation up to the user message, when the caller has read it already;
        ``opening``: events the log starts with (``degraded``).

        ``pending``: the turn's acceptance is still being committed. The worker gets the prompt at once
        (its prefill overlaps the commit, which TTFT no longer waits for), but nothing of the turn is
        shown, published or stored until the caller says ``confirm``; ``discard`` drops it."""
        # The live log exists before this returns: a client may follow the turn at once.
        live = self.event_log.writer(turn.message_id, prefix, pending=pending)
        for name, data in opening:
            self.event_log.note(live, name, data)
        generation = Generation(
            turn=turn,
            live=live,
            attempts=turn.attempts,
            checkpointed_seq=live.visible,
            checkpointed=bool(prefix),
            branch=branch,
            settled=asyncio.Event() if pending else None,
        )
        self.running[turn.message_id] = generation
        generation.task = asyncio.create_task(self._run(generation), name=f"turn-{turn.message_id}")

    def confirm(self, turn_id: UUID) -> None:
        """The pending turn's acceptance is committed: its events go out, its end may be stored."""
        generation = self.running.get(turn_id)
        if generation is None or not generation.pending:
            return
        self.event_log.confirm(generation.live)
        assert generation.settled is not None
        generation.settled.set()

    def discard(self, turn_id: UUID) -> None:
        """The pending turn's acceptance failed: stop it (the worker is told) and forget it."""
        generation = self.running.get(turn_id)
        if generation is None or not generation.pending:
            return
        generation.discarded = True
        assert generation.settled is not None
        generation.settled.set()
        # Here, not in the task: a task cancelled before its first step never runs its cleanup.
        del self.running[turn_id]
        self.event_log.discard(generation.live)
        if generation.task is not None:
            generation.task.cancel()

    async def cancel(self, turn_id: UUID) -> bool:
        """Stop a turn generated here; False if it is not (it may run on another replica)."""
        generation = self.running.get(turn_id)
        if generation is None or generation.task is None or generation.task.done():
            return False
        if generation.finishing:
            await asyncio.shield(generation.task)
            return True
        generation.cancel_requested = True
        generation.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(generation.task)
        return True

    def progress(self, turn_id: UUID) -> tuple[bool, str, str | None] | None:
        """Of a turn generated here: whether it reached a worker, and its text so far."""
        generation = self.running.get(turn_id)
        if generation is None:
            return None
        return (generation.started_at is not None, *generation.text())

    async def start_checkpoints(self) -> None:
        self._checkpointer.start()

    async def shutdown(self) -> None:
        """Let running turns finish for a grace period; the rest are left to a surviving replica."""
        if self.running:
            tasks = [g.task for g in self.running.values() if g.task is not None]
            _, pending = await asyncio.wait(tasks, timeout=self.shutdown_grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        await self._checkpointer.stop()

    # --- one turn ---
    async def _run(self, generation: Generation) -> None:
        turn = generation.turn
        generation.marks["task"] = time.time()
        try:
            async with self._slot(turn):
                generation.marks["slot"] = time.time()
                await self._generate(generation)
            await self._complete(generation)
        except QueueTimeout as timeout:
            await self._store_end(
                generation,
                status="failed",
                finish_reason="error",
                failure=TurnFailed(
                    "overloaded",
                    "Every model server stayed busy; send the message again shortly.",
                    retry_after_s=timeout.retry_after_s,
                ),
            )
        except asyncio.CancelledError:
            if generation.discarded:
                await self._abort_upstream(generation)
                return
            if not generation.cancel_requested:
                raise  # shutting down: the lease lapses and a surviving replica takes over
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            await self._abort_upstream(generation)
            await self._store_end(generation, status="cancelled", finish_reason="cancelled")
        except TurnFailed as failure:
            await self._store_end(generation, status="failed", finish_reason="error", failure=failure)
        except Exception:
            logger.exception("turn crashed", extra={"turn": str(turn.message_id)})
            await self._store_end(
                generation,
                status="failed",
                finish_reason="error",
                failure=TurnFailed("internal", "The answer could not be completed."),
            )
        finally:
            self.running.pop(turn.message_id, None)

    def _slot(self, turn: Turn) -> contextlib.AbstractAsyncContextManager[None]:
        """A place in the fleet's capacity, waited for in the fair queue (``queued`` events tell the
        client where it stands)."""

        async def announce(position: int, estimated_wait_s: float) -> None:
            await self.event_log.append(
                turn.message_id, "queued", {"position": position, "estimated_wait_s": estimated_wait_s}
            )

        return self.admission.slot(
            model_id=turn.model.id,
            turn_id=turn.message_id,
            user_id=turn.user_id,
            priority=turn.priority,
            paying=turn.paying,
            announce=announce,
            straight_through=turn.paying and turn.model.priority_scheduling,
        )

    async def _generate(self, generation: Generation) -> None:
        """Stream the answer from a worker; one that fails before the first token is replaced by another
        (a bounded number of times)."""
        turn = generation.turn
        prompt, route = await self._prompt(generation)
        tried: set[str] = set()
        while True:
            dispatch = self.pool.dispatch(route, exclude=frozenset(tried))
            if dispatch is None:
                raise TurnFailed(
                    "upstream_unavailable", "No inference worker is available; retry later.", retry_after_s=5
                )
            tried.add(dispatch.worker.url)
            self._on_worker(generation, dispatch)
            assert generation.rid is not None
            request = ChatRequest(
                model=turn.model.served_name,
                messages=prompt.messages,
                rid=generation.rid,
                max_tokens=turn.max_tokens,
                chat_template_kwargs=turn.template_kwargs(),
                priority=turn.upstream_priority(),
            )
            try:
                await self._stream(generation, request)
            except UpstreamError as error:
                # The worker is to blame unless it refused our request as invalid (a 4xx).
                dispatch.release(None, worker_failed=error.retryable)
                self._retry_or_fail(generation, error)
            except BaseException:
                dispatch.release(None)  # cancelled, or shutting down: not the worker's fault
                raise
            else:
                usage = generation.usage
                dispatch.release(
                    Outcome(
                        prompt_tokens=usage.prompt_tokens if usage else 0,
                        cached_tokens=usage.cached_tokens if usage else 0,
                        completion_tokens=usage.completion_tokens if usage else 0,
                        duration_s=time.time() - dispatch.started_at,
                    )
                )
                return

    async def _prompt(self, generation: Generation) -> tuple[Prompt, RouteRequest]:
        """What is sent (system prompt and the branch, reasoning dropped) and what routing knows of it."""
        turn = generation.turn
        branch, generation.branch = generation.branch, None
        if branch is None:
            async with self.sessions() as session:
                branch = await MessageTree(session).path_to(turn.user_message_id)
        generation.marks["branch"] = time.time()
        prompt = render_prompt(
            self.settings.system_prompt,
            branch,
            budget_tokens=turn.model.context_tokens - turn.max_tokens - CONTEXT_MARGIN_TOKENS,
            drop_block_turns=self.settings.context_drop_block_turns,
        )
        route = RouteRequest(
            model_id=turn.model.id,
            conversation_id=turn.conversation_id,
            prompt_chars=prompt.chars,
            prompt_text=" ".join(message["content"] for message in prompt.messages),
            previous=previous_turn(branch),
        )
        return prompt, route

    def _on_worker(self, generation: Generation, dispatch: Dispatch) -> None:
        turn = generation.turn
        generation.attempts += 1
        generation.worker = dispatch.worker.url
        generation.dispatch = dispatch
        # The rid is the message id, so an operator can follow a turn into SGLang's logs; later attempts
        # get a suffix so that a worker never sees one rid twice.
        generation.rid = (
            str(turn.message_id) if generation.attempts == 1 else f"{turn.message_id}-{generation.attempts}"
        )
        self._mark_started(generation)

    def _retry_or_fail(self, generation: Generation, error: UpstreamError) -> None:
        """Raise why the turn fails, unless another worker may still be tried."""
        turn = generation.turn
        if generation.has_output:
            raise TurnFailed("upstream_error", "The model stopped answering mid-way.") from error
        if not error.retryable:
            raise TurnFailed(error.code, error.message) from error
        if generation.attempts >= self.settings.upstream_attempts:
            raise TurnFailed(
                "upstream_unavailable", "The model could not be reached; retry later.", retry_after_s=5
            ) from error
        metrics.UPSTREAM_RETRIES.labels(turn.model.id).inc()
        logger.warning(
            "worker failed before the first token; trying another",
            extra={"turn": str(turn.message_id), "worker": generation.worker, "error": error.message[:200]},
        )

    async def _stream(self, generation: Generation, request: ChatRequest) -> None:
        """Relay the worker's stream into the turn's live log: the hot path of the whole service (SGLang
        sends one chunk per token). The connection hands each chunk's items to a ``Relay`` from the event
        loop's I/O callback; a delta is a list append, and the event log seals what piled up once per
        coalescing window. This task only waits for the end."""
        assert generation.worker is not None
        relay = Relay(self, generation)
        try:
            # One deadline for the whole stream: first the wait for the first token, then the longest
            # allowed gap between tokens (the relay pushes it forward at most twice per gap).
            async with asyncio.timeout(self.settings.first_token_timeout_s) as deadline:
                relay.deadline = deadline
                await self.client.stream_chat(generation.worker, request, relay)
        except TimeoutError as exc:
            await self._abort_upstream(generation)
            raise UpstreamError("no token within the timeout") from exc
        if generation.finish_reason is None:
            raise UpstreamError("the stream ended without a finish reason")
        if generation.finish_reason == "abort":
            raise UpstreamError("the worker aborted the request", status=503)

    def _first_token(self, generation: Generation) -> None:
        turn = generation.turn
        generation.first_token_at = datetime.now(UTC)
        generation.first_token_clock = time.monotonic()
        generation.unmarked = True
        if generation.dispatch is not None:
            generation.dispatch.first_token()
        metrics.TIME_TO_FIRST_TOKEN.labels(turn.model.id).observe(
            (generation.first_token_at - turn.accepted_at).total_seconds()
        )

    def _mark_started(self, generation: Generation) -> None:
        """The turn is on a worker: tell the client now (without waiting for the event's publication,
        which would delay the request to the worker); the row learns it at the next checkpoint (at most a
        second away, in one statement with every other turn that started), which spares every turn a
        write transaction of its own."""
        turn = generation.turn
        if generation.started_at is None:
            generation.started_at = datetime.now(UTC)
            self._warn_if_slow_start(generation)
        generation.unmarked = True
        if not generation.announced:
            generation.announced = True
            self.event_log.note(generation.live, "started", {"model": turn.model.id})

    @staticmethod
    def _warn_if_slow_start(generation: Generation) -> None:
        """Log a turn that took long from acceptance to its worker for reasons other than the fair queue
        (which has its own metrics), and where the time went: the accepting commit and the task's start,
        the queue, the branch's query, the prompt and routing."""
        assert generation.started_at is not None
        accepted, started = generation.turn.accepted_at.timestamp(), generation.started_at.timestamp()
        steps, previous = {}, accepted
        for name in ("task", "slot", "branch"):
            at = generation.marks.get(name, previous)
            steps[f"{name}_s"], previous = round(at - previous, 3), at
        steps["route_s"] = round(started - previous, 3)
        if started - accepted - steps["slot_s"] < SLOW_START_S:
            return
        logger.warning(
            "turn slow to reach a worker",
            extra={"turn": str(generation.turn.message_id), "total_s": round(started - accepted, 3), **steps},
        )

    async def _abort_upstream(self, generation: Generation) -> None:
        if generation.worker and generation.rid:
            await self.client.abort(generation.worker, generation.rid)

    async def _complete(self, generation: Generation) -> None:
        reason = "length" if generation.finish_reason == "length" else "stop"
        await self._store_end(generation, status="complete", finish_reason=reason)
        if (
            generation.first_token_clock is not None
            and generation.usage
            and generation.usage.completion_tokens > 1
        ):
            gap = (time.monotonic() - generation.first_token_clock) / (generation.usage.completion_tokens - 1)
            metrics.TIME_PER_OUTPUT_TOKEN.labels(generation.turn.model.id).observe(gap)
        for callback in self.on_complete:
            callback(generation.turn)

    async def _store_end(
        self, generation: Generation, *, status: Status, finish_reason: str, failure: TurnFailed | None = None
    ) -> None:
        """Persist the turn's end and append its terminal event (the store does both, in that order); of a
        pending turn, once its row exists."""
        turn = generation.turn
        if generation.settled is not None:
            await generation.settled.wait()
            if generation.discarded:
                return
        generation.finishing = True
        live = generation.live
        # Whatever arrived in the last coalescing window becomes events before the answer is stored whole.
        self.event_log.seal(live)
        content, reasoning = live.text()
        ending = TurnEnding(
            status=status,
            finish_reason=finish_reason,
            content=content,
            reasoning=reasoning,
            failure=failure,
            usage=generation.usage,
            worker=generation.worker,
            attempts=generation.attempts,
            started_at=generation.started_at,
            first_token_at=generation.first_token_at,
            layout=live.layout if live.layout.first_seq == 1 else None,
            checkpointed=generation.checkpointed,
        )
        # Retried while the database is unreachable; lost to another replica (our lease lapsed) or still
        # unwritten after the retries, the turn is settled by a sweeper from its event log.
        await self.store.finish(
            turn.message_id,
            ending,
            conversation_id=turn.conversation_id,
            user_id=turn.user_id,
            owner=self.replica_id,
            retry=True,
        )
        outcome = status if failure is None else f"failed:{failure.code}"
        metrics.TURNS.labels(turn.model.id, outcome).inc()

    # --- checkpoints ---
    async def checkpoint(self) -> None:
        """Tell the rows which turns reached a worker (one statement for all of them), and — only while
        the event log cannot hold the streams (embedded, or Redis unreachable) — append each streaming
        turn's new text (another one)."""
        rows = []
        for generation in self.running.values():
            if generation.unmarked and not generation.pending:
                generation.unmarked = False
                rows.append(
                    {
                        "turn_id": generation.turn.message_id,
                        "owner": self.replica_id,
                        "worker": generation.worker,
                        "started_at": generation.started_at,
                        "first_token_at": generation.first_token_at,
                        "attempts": generation.attempts,
                    }
                )
        await self.store.mark_streaming(rows)
        if not self.event_log.durable:
            await self.store.checkpoint(self._chunks())

    def _chunks(self) -> list[Chunk]:
        chunks = []
        for generation in self.running.values():
            live = generation.live
            if live.visible <= generation.checkpointed_seq or generation.finishing or generation.pending:
                continue
            content, reasoning, layout = live.piece(generation.checkpointed_seq, live.visible)
            chunks.append(
                Chunk(generation.turn.message_id, live.visible, content, reasoning, layout.encode())
            )
            generation.checkpointed_seq = live.visible
            generation.checkpointed = True
        return chunks
