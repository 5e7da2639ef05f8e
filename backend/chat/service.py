"""Turn logic without HTTP: accept a message (or a regeneration), cancel, feedback, read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import UUID

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.admission.controller import AdmissionController
from backend.admission.quota import check_turn_allowed, measure
from backend.admission.tiers import TierLimits, tier_limits
from backend.chat.control import ControlChannel
from backend.chat.event_log import EventLog, LogUnavailable
from backend.chat.events import TurnEvent, text_from_events
from backend.chat.idempotency import Idempotency, remember, replay, request_hash
from backend.chat.layout import Layout
from backend.chat.runner import TurnRunner
from backend.chat.store import TurnStore
from backend.chat.turn import Turn, TurnEnding
from backend.conversations.service import ConversationService
from backend.conversations.tree import MessageTree
from backend.db import models as m
from backend.errors import ApiError, Conflict, NotFound, PayloadTooLarge, ValidationFailed
from backend.observability import metrics
from backend.settings import ModelSpec, Settings

CANCEL_WAIT_S = 5.0
CANCEL_POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class AcceptedTurn:
    user_message: m.Message
    assistant_message: m.Message
    # False when an Idempotency-Key matched an earlier request: nothing new was created.
    created: bool


class UserLocks:
    """Serialises one user's turn acceptance within this process (SQLite cannot lock a row)."""

    def __init__(self) -> None:
        # Each user's lock and how many acceptances hold or wait for it; gone when that reaches zero.
        self._locks: dict[UUID, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, user_id: UUID) -> AsyncIterator[None]:
        lock, users = self._locks.get(user_id, (asyncio.Lock(), 0))
        self._locks[user_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[user_id]
            if users == 1:
                del self._locks[user_id]
            else:
                self._locks[user_id] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """A user message and how to answer it, from the HTTP body or a WebSocket ``send`` frame alike.

    Without ``parent_id`` it continues the current branch; naming an earlier message's parent edits that
    message (the new one becomes its sibling); ``None`` starts a new root."""

    content: str
    parent_id: UUID | msgspec.UnsetType | None = msgspec.UNSET
    model: str | None = None
    thinking: bool | None = None


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    """How to answer again (regenerate): another model, thinking on or off."""

    model: str | None = None
    thinking: bool | None = None


class TurnService:
    """Accepting, reading, cancelling and rating turns; each call is its own unit of work."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        admission: AdmissionController,
        runner: TurnRunner,
        store: TurnStore,
        event_log: EventLog,
        control: ControlChannel,
        replica_id: UUID,
    ) -> None:
        self.sessions = sessions
        self.chat = settings.chat
        self.inference = settings.inference
        self.tiers = settings.tiers
        self.admission = admission
        self.runner = runner
        self.store = store
        self.event_log = event_log
        self.control = control
        self.replica_id = replica_id
        self.user_locks = UserLocks()

    # --- reading ---
    async def owned_message(self, user_id: UUID, message_id: UUID) -> m.Message:
        async with self.sessions() as session:
            return await _owned_message(session, user_id, message_id)

    async def owned_answer(self, user_id: UUID, message_id: UUID) -> m.Message:
        async with self.sessions() as session:
            return await _owned_answer(session, user_id, message_id)

    async def message(self, user_id: UUID, message_id: UUID) -> m.Message:
        """A message, with the text generated so far while its answer streams (the row lags by up to a
        checkpoint)."""
        return await self.with_live_text(await self.owned_message(user_id, message_id))

    async def with_live_text(self, message: m.Message) -> m.Message:
        """``message`` (detached from its session) as a reader should see it while its answer streams:
        its text so far and its status (the row learns both later), from this process's live log, else the
        shared event log, else its checkpoints."""
        if message.status not in m.ACTIVE_STATUSES:
            return message
        progress = self.runner.progress(message.id)
        if progress is None and (events := await self._log_so_far(message.id)):
            progress = (any(event.event == "started" for event in events), *text_from_events(events))
        if progress is not None:
            started, message.content, message.reasoning = progress
            if started:
                message.status = "streaming"
        return message

    async def _log_so_far(self, turn_id: UUID) -> list[TurnEvent]:
        """A turn's events as readers got them: the shared event log, else the stored checkpoints."""
        with contextlib.suppress(LogUnavailable):
            if events := await self.event_log.read(turn_id):
                return events
        stored = await self.store.stored_log(turn_id)
        return stored.events() if stored is not None else []

    # --- accepting ---
    def resolve_model(self, requested: str | None, fallback: str) -> ModelSpec:
        model = self.inference.model(requested or fallback) or self.inference.default
        if requested and self.inference.model(requested) is None:
            raise ValidationFailed(
                "Unknown model.", fields={"model": f"not one of GET /v1/models: {requested}"}
            )
        return model

    def check_content(self, content: str) -> None:
        if not content.strip():
            raise ValidationFailed("The message is empty.", fields={"content": "must not be blank"})
        if len(content) > self.chat.content_max_chars:
            raise PayloadTooLarge(f"The message is longer than {self.chat.content_max_chars} characters.")

    async def send(
        self, user: m.User, conversation_id: UUID, request: TurnRequest, idempotency_key: str | None
    ) -> AcceptedTurn:
        """Store the user message and a queued answer in one transaction, then start generating."""
        self.check_content(request.content)
        explicit_parent = request.parent_id is not msgspec.UNSET
        fingerprint = request_hash(
            {
                "content": request.content,
                "parent_id": str(request.parent_id) if explicit_parent else "(current leaf)",
                "model": request.model,
                "thinking": request.thinking,
            }
        )
        idempotency = (f"send:{conversation_id}", idempotency_key, fingerprint)
        async with self.sessions() as session:
            tree = MessageTree(session)
            conversations = ConversationService(session, self.inference)
            conversation = await conversations.owned(user.id, conversation_id, lock_user=True)
            model = self.resolve_model(request.model, conversation.model)

            async def branch() -> tuple[list[m.Message], bool]:
                if isinstance(request.parent_id, msgspec.UnsetType):
                    path = await tree.current_branch(conversation)  # continues the current branch
                    parent_id = path[-1].id if path else None
                else:
                    parent_id = request.parent_id
                    path = await tree.path_to(parent_id) if parent_id is not None else []
                if parent_id is not None:
                    _check_parent(conversation.id, path[-1] if path else None)
                question = tree.new_message(
                    conversation, parent_id=parent_id, role="user", content=request.content, status="complete"
                )
                return [*path, question], True

            return await self._accept(
                session, user, conversation, model, request.thinking, idempotency, branch
            )

    async def regenerate(
        self, user: m.User, answer_id: UUID, request: AnswerRequest, idempotency_key: str | None
    ) -> AcceptedTurn:
        """A new answer to the same user message, as a sibling of ``answer_id``."""
        fingerprint = request_hash({"model": request.model, "thinking": request.thinking})
        idempotency = (f"regenerate:{answer_id}", idempotency_key, fingerprint)
        async with self.sessions() as session:
            answer = await _owned_answer(session, user.id, answer_id)
            conversation = await ConversationService(session, self.inference).owned(
                user.id, answer.conversation_id, lock_user=True
            )
            question = await session.get(m.Message, answer.parent_id) if answer.parent_id else None
            if question is None:
                raise NotFound("Message not found.")
            model = self.resolve_model(request.model, answer.model or conversation.model)

            async def branch() -> tuple[list[m.Message], bool]:
                assert question is not None
                return await MessageTree(session).path_to(question.id), False

            return await self._accept(
                session, user, conversation, model, request.thinking, idempotency, branch
            )

    async def _accept(
        self,
        session: AsyncSession,
        user: m.User,
        conversation: m.Conversation,
        model: ModelSpec,
        thinking: bool | None,
        idempotency: Idempotency,
        branch_of: Callable[[], Awaitable[tuple[list[m.Message], bool]]],
    ) -> AcceptedTurn:
        """The steps every turn goes through: shed early, or (one acceptance per user at a time) check the
        quota, read the branch up to the user message (the runner renders the prompt from it), store the
        answer.

        A retry (an Idempotency-Key stored before) gets its earlier turn back. That is looked up only when
        something refuses the request or the key turns out to be taken when it is stored: a first attempt,
        which nearly every request is, costs no lookup."""
        await self._shed_early(session, user, model, idempotency)
        async with self._accepting(user.id):
            try:
                limits = await self._check_allowed(session, user)
                branch, new_question = await branch_of()
            except ApiError:
                # Refused now, but perhaps accepted the first time: the retry gets that turn.
                if (earlier := await _replayed(session, user.id, idempotency)) is not None:
                    return earlier
                raise
            return await self._accept_answer(
                session,
                user,
                conversation,
                branch,
                new_question,
                model,
                model.thinking_for(thinking),
                limits=limits,
                idempotency=idempotency,
            )

    async def _accept_answer(
        self,
        session: AsyncSession,
        user: m.User,
        conversation: m.Conversation,
        branch: list[m.Message],
        new_question: bool,
        model: ModelSpec,
        thinking: bool,
        *,
        limits: TierLimits,
        idempotency: Idempotency,
    ) -> AcceptedTurn:
        user_message = branch[-1]
        # Shed now (nothing is stored) or admit, with whatever the overload level changes for this tier.
        plan = self.admission.plan(limits, model, thinking=thinking, max_tokens=model.max_output_tokens)
        tree = MessageTree(session)
        answer = tree.new_message(
            conversation,
            parent_id=user_message.id,
            role="assistant",
            content="",
            status="queued",
            model=model.id,
        )
        answer.thinking = plan.thinking
        answer.max_tokens = plan.max_tokens
        answer.lease_owner = self.replica_id
        # The worker gets the prompt now, while the turn is stored: its prefill overlaps the writes and the
        # commit instead of following them. Nothing of the turn goes out or is stored until the commit
        # succeeds; if it fails, the turn is dropped and the worker told to stop. The first event of a
        # degraded turn's log tells the client what the overload changed.
        opening = (
            [("degraded", {"reason": "overload", "level": self.admission.level, "changes": plan.changes})]
            if plan.changes
            else []
        )
        turn = Turn.from_message(answer, user_id=user.id, model=model, limits=limits)
        self.runner.start(turn, branch=branch, pending=True, opening=opening)
        try:
            await tree.grow(
                conversation,
                [user_message, answer] if new_question else [answer],
                model=model.id if new_question else None,
            )
            _, key, _ = idempotency
            key_taken = key is not None and not await remember(
                session, user.id, idempotency, user_message, answer, now=answer.created_at
            )
            if not key_taken:
                await session.commit()
        except BaseException:
            self.runner.discard(answer.id)
            raise
        if key_taken:
            # A retry of a turn accepted before (or a moment ago, on another replica): answer with it.
            self.runner.discard(answer.id)
            await session.rollback()
            earlier = await _replayed(session, user.id, idempotency)
            if earlier is None:
                raise Conflict("This Idempotency-Key is being used by another request; retry it.")
            return earlier
        self.runner.confirm(answer.id)
        metrics.TURNS_STARTED.labels(model.id).inc()
        return AcceptedTurn(user_message=user_message, assistant_message=answer, created=True)

    async def _shed_early(
        self,
        session: AsyncSession,
        user: m.User,
        model: ModelSpec,
        idempotency: Idempotency,
    ) -> None:
        """Refuse a turn the overload policy sheds before the work of accepting it (the user's row lock,
        the quota's queries, the inserts): refusing must cost far less than serving, or under a spike
        the refused crowd takes the CPU of the turns being served. A retry of a turn that was already
        accepted (its Idempotency-Key is stored) goes on to get its turn back."""
        if not self.admission.would_shed(tier_limits(self.tiers, user.tier), model.id):
            return
        if await _replayed(session, user.id, idempotency) is not None:
            return
        raise self.admission.shed(model.id)

    @asynccontextmanager
    async def _accepting(self, user_id: UUID) -> AsyncIterator[None]:
        """One turn acceptance at a time per user, so that the concurrency cap cannot be raced: in this
        process by a lock, across replicas by the user's row, locked when the conversation was read."""
        async with self.user_locks.hold(user_id):
            yield

    async def _check_allowed(self, session: AsyncSession, user: m.User) -> TierLimits:
        """The tier's quota and turns-at-once cap (429 when reached); returns the tier's limits."""
        limits = tier_limits(self.tiers, user.tier)
        check_turn_allowed(await measure(session, user.id, limits))
        return limits

    # --- after accepting ---
    async def cancel(self, user: m.User, answer_id: UUID) -> m.Message:
        """Stop generation wherever it runs; the partial text stays, ``status`` becomes ``cancelled``."""
        answer = await self.owned_answer(user.id, answer_id)
        if answer.status not in m.ACTIVE_STATUSES:
            return answer
        if not await self.runner.cancel(answer.id):
            # Another replica generates it (or none, if it died): ask whoever does. With the channel down,
            # nobody answers, and the turn is ended from here.
            await self.control.request_cancel(answer.id)
            if not await self._await_terminal(answer.id):
                await self._force_cancel(user, answer)
        return await self.owned_answer(user.id, answer_id)

    async def _await_terminal(self, turn_id: UUID) -> bool:
        """Wait (bounded) for the owning replica to end the turn after a remote cancel: its row says so
        first (the terminal event follows the stored end), and it can be read with Redis away."""
        deadline = asyncio.get_running_loop().time() + CANCEL_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(CANCEL_POLL_S)
            async with self.sessions() as session:
                status = await session.scalar(select(m.Message.status).where(m.Message.id == turn_id))
            if status not in m.ACTIVE_STATUSES:
                return True
        return False

    async def _force_cancel(self, user: m.User, answer: m.Message) -> None:
        """Nobody answered the cancel (the owner is gone or cut off): end the turn from here, with the
        text its readers had. The owner, if alive, is fenced off: its writes require its own lease."""
        events = await self._log_so_far(answer.id)
        content, reasoning = text_from_events(events)
        await self.store.finish(
            answer.id,
            TurnEnding(
                status="cancelled",
                finish_reason="cancelled",
                content=content,
                reasoning=reasoning,
                layout=Layout.of(events),
                checkpointed=True,
            ),
            conversation_id=answer.conversation_id,
            user_id=user.id,
            owner=None,
        )

    async def feedback(
        self, user: m.User, answer_id: UUID, rating: str | None, comment: str | None
    ) -> m.Message:
        async with self.sessions() as session:
            answer = await _owned_answer(session, user.id, answer_id)
            answer.feedback = rating
            answer.feedback_comment = comment if rating is not None else None
            await session.commit()
            return answer


async def _owned_message(session: AsyncSession, user_id: UUID, message_id: UUID) -> m.Message:
    message = await session.scalar(
        select(m.Message)
        .join(m.Conversation, m.Conversation.id == m.Message.conversation_id)
        .where(m.Message.id == message_id, m.Conversation.user_id == user_id)
    )
    if message is None:
        raise NotFound("Message not found.")
    return message


async def _owned_answer(session: AsyncSession, user_id: UUID, message_id: UUID) -> m.Message:
    message = await _owned_message(session, user_id, message_id)
    if message.role != "assistant":
        raise NotFound("No assistant message with this id.")
    return message


async def _replayed(session: AsyncSession, user_id: UUID, idempotency: Idempotency) -> AcceptedTurn | None:
    earlier = await replay(session, user_id, idempotency)
    if earlier is None:
        return None
    user_message, answer = earlier
    return AcceptedTurn(user_message=user_message, assistant_message=answer, created=False)


def _check_parent(conversation_id: UUID, parent: m.Message | None) -> None:
    if parent is None or parent.conversation_id != conversation_id:
        raise ValidationFailed(
            "No such message in this conversation.", fields={"parent_id": "not in this conversation"}
        )
    if parent.role != "assistant":
        raise ValidationFailed(
            "A message answers an assistant message (or starts the conversation with parent_id null).",
            fields={"parent_id": "must be an assistant message"},
        )
    if parent.status in m.ACTIVE_STATUSES:
        raise Conflict("The previous answer is still being generated; wait for it or cancel it.")
