"""A Chat Completions request through everything a conversation turn goes through: the tier's limits and
quota (one window for both), the degrade ladder, the fair queue, and the pool's routing — then a
``Completion`` on a worker. Nothing is stored but one usage row when the request ends."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.admission.controller import AdmissionController, QueueTimeout
from backend.admission.quota import check_turn_allowed, measure
from backend.admission.ratelimit import TurnRateLimit
from backend.admission.tiers import TierLimits, tier_limits
from backend.db import models as m
from backend.db.base import new_id
from backend.errors import Overloaded
from backend.inference.client import SGLangClient
from backend.inference.policies import RouteRequest
from backend.inference.pool import WorkerPool
from backend.inference.wire import ChatRequest
from backend.observability import metrics
from backend.openai_api.completion import Completion, Timeouts
from backend.openai_api.prompt import Prepared, prepare
from backend.openai_api.schemas import ChatCompletionRequest
from backend.settings import Settings

logger = logging.getLogger("surge.openai")
# SGLang's priorities of two tiers lie this far apart (as for turns: backend.chat.turn).
UPSTREAM_PRIORITY_STEP = 100
CHAT_ROUTE = "/openai/v1/chat/completions"


async def _no_announcement(_position: int, _wait_s: float) -> None:
    """A Chat Completions caller has no channel for its place in the queue: it just waits."""


@dataclass(frozen=True, slots=True)
class Caller:
    user: m.User
    ip: str


class CompletionService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        admission: AdmissionController,
        turn_rate_limit: TurnRateLimit,
        pool: WorkerPool,
        client: SGLangClient,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.admission = admission
        self.turn_rate_limit = turn_rate_limit
        self.pool = pool
        self.client = client
        # Requests running in this process, per user: they count against the tier's turns-at-once cap
        # (their usage rows are written when they end).
        self.active: Counter[UUID] = Counter()

    @asynccontextmanager
    async def run(
        self, caller: Caller, body: ChatCompletionRequest
    ) -> AsyncIterator[tuple[Prepared, Completion]]:
        """Admit the request and start it on a worker; the body reads the answer. Whatever happens, the
        worker, the slot and the concurrency count are released and the usage recorded on the way out."""
        prepared = prepare(body, self.settings.inference)
        limits = tier_limits(self.settings.tiers, caller.user.tier)
        model = prepared.model
        if self.admission.would_shed(limits, model.id):
            raise self.admission.shed(model.id)
        await self.turn_rate_limit.check(caller.user.id, caller.ip)
        started = datetime.now(UTC)
        async with contextlib.AsyncExitStack() as stack:
            await self._hold_concurrency(stack, caller.user.id, limits)
            plan = self.admission.plan(
                limits, model, thinking=prepared.thinking, max_tokens=prepared.max_tokens
            )
            prepared = replace(prepared, thinking=plan.thinking, max_tokens=plan.max_tokens)
            await self._wait_for_slot(stack, caller.user.id, limits, prepared)
            completion = self._completion(prepared, limits)
            stack.push_async_callback(self._record, caller.user.id, prepared, completion, started)
            stack.push_async_callback(completion.close)
            await completion.start()
            yield prepared, completion

    async def _hold_concurrency(
        self, stack: contextlib.AsyncExitStack, user_id: UUID, limits: TierLimits
    ) -> None:
        """Count this request as running, then check the quota and the cap with it (counted first, so
        that two requests arriving together cannot both slip under the cap)."""
        self.active[user_id] += 1
        stack.callback(self._release, user_id)
        async with self.sessions() as session:
            usage = await measure(session, user_id, limits)
        running_here = self.active[user_id] - 1
        check_turn_allowed(replace(usage, concurrent_turns=usage.concurrent_turns + running_here))

    def _release(self, user_id: UUID) -> None:
        self.active[user_id] -= 1
        if self.active[user_id] <= 0:
            del self.active[user_id]

    async def _wait_for_slot(
        self, stack: contextlib.AsyncExitStack, user_id: UUID, limits: TierLimits, prepared: Prepared
    ) -> None:
        model = prepared.model
        try:
            await stack.enter_async_context(
                self.admission.slot(
                    model_id=model.id,
                    turn_id=new_id(),
                    user_id=user_id,
                    priority=limits.priority,
                    paying=limits.paying,
                    announce=_no_announcement,
                    straight_through=limits.paying and model.priority_scheduling,
                )
            )
        except QueueTimeout as timeout:
            raise Overloaded(
                "Every model server stayed busy; retry shortly.", retry_after_s=timeout.retry_after_s
            ) from timeout

    def _completion(self, prepared: Prepared, limits: TierLimits) -> Completion:
        model, chat = prepared.model, self.settings.chat
        request = ChatRequest(
            model=model.served_name,
            messages=prepared.messages,
            rid=f"chatcmpl-{new_id().hex}",
            max_tokens=prepared.max_tokens,
            chat_template_kwargs=prepared.template_kwargs(),
            temperature=prepared.body.temperature,
            priority=-UPSTREAM_PRIORITY_STEP * limits.priority if model.priority_scheduling else None,
            top_p=prepared.body.top_p,
            stop=prepared.stop,
            seed=prepared.body.seed,
        )
        # No conversation to stick to: the prompt's prefix is what the routing policy matches on, so
        # requests sharing a system prompt or a history land where it is cached.
        route = RouteRequest(
            model_id=model.id,
            conversation_id=None,
            prompt_chars=sum(len(message["content"]) for message in prepared.messages),
            prompt_text=" ".join(message["content"] for message in prepared.messages),
        )
        timeouts = Timeouts(chat.first_token_timeout_s, chat.token_gap_timeout_s, chat.upstream_attempts)
        return Completion(client=self.client, pool=self.pool, request=request, route=route, timeouts=timeouts)

    async def _record(
        self, user_id: UUID, prepared: Prepared, completion: Completion, started: datetime
    ) -> None:
        """One usage row (the quota reads it), written when the request ends, however it ended."""
        usage = completion.usage
        status = completion.status
        metrics.OPENAI_REQUESTS.labels(CHAT_ROUTE, prepared.model.id, status).inc()
        if status == "failed":
            return  # a failed request does not count, as for turns
        try:
            async with self.sessions() as session:
                await session.execute(
                    insert(m.ApiUsage).values(
                        id=new_id(),
                        user_id=user_id,
                        model=prepared.model.id,
                        status=status,
                        prompt_tokens=usage.prompt_tokens if usage else 0,
                        completion_tokens=usage.completion_tokens if usage else completion.deltas,
                        created_at=started,
                        updated_at=started,
                    )
                )
                await session.commit()
        except Exception:
            # The answer was served; losing its count is better than failing the response's end.
            logger.exception("could not record API usage", extra={"user": str(user_id)})
