"""Automatic conversation titles: after the first answer, a short non-thinking request names the chat.

It runs beside the turn, never in its way: failures are logged and the conversation stays untitled.
"""

from __future__ import annotations

import asyncio
import logging
import re

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.chat.turn import Turn
from backend.db import models as m
from backend.inference.client import ChatRequest, SGLangClient, UpstreamError
from backend.inference.policies import RouteRequest
from backend.inference.pool import WorkerPool

logger = logging.getLogger("surge.chat")

TITLE_PROMPT = (
    "Write a title of at most six words for a conversation that starts with the user's message below. "
    "Answer with the title only, without quotes."
)
MAX_TITLE_CHARS = 80
QUESTION_CHARS = 1000


def clean_title(text: str) -> str | None:
    """The first line, without quotes, markup or trailing punctuation, cut at a word boundary."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = re.sub(r"^[#*\"'`\s]+|[\"'`*\s.:;!]+$", "", line)
    if len(line) > MAX_TITLE_CHARS:
        line = line[:MAX_TITLE_CHARS].rsplit(" ", 1)[0]
    return line or None


class TitleWriter:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        pool: WorkerPool,
        client: SGLangClient,
        concurrency: int = 4,
    ) -> None:
        self.sessions = sessions
        self.pool = pool
        self.client = client
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def after_turn(self, turn: Turn) -> None:
        task = asyncio.create_task(self._title(turn), name=f"surge-title-{turn.message_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _title(self, turn: Turn) -> None:
        async with self._slots:
            try:
                async with self.sessions() as session:
                    title = await session.scalar(
                        select(m.Conversation.title).where(m.Conversation.id == turn.conversation_id)
                    )
                    question = await session.scalar(
                        select(m.Message.content).where(m.Message.id == turn.user_message_id)
                    )
                if title is not None or question is None:
                    return
                dispatch = self.pool.dispatch(
                    RouteRequest(
                        model_id=turn.model.id,
                        conversation_id=turn.conversation_id,
                        prompt_chars=len(question),
                    )
                )
                if dispatch is None:
                    return
                kwargs = (
                    {turn.model.thinking_switch: False}
                    if turn.model.thinking == "optional" and turn.model.thinking_switch
                    else {}
                )
                try:
                    text, _ = await self.client.complete_chat(
                        dispatch.worker.url,
                        ChatRequest(
                            model=turn.model.served_name,
                            messages=[
                                {"role": "system", "content": TITLE_PROMPT},
                                {"role": "user", "content": question[:QUESTION_CHARS]},
                            ],
                            rid=f"{turn.message_id}-title",
                            max_tokens=24,
                            chat_template_kwargs=kwargs,
                            temperature=0.3,
                        ),
                    )
                finally:
                    dispatch.release(None)
                title = clean_title(text)
                if title is None:
                    return
                async with self.sessions() as session:
                    # Only if still untitled: the user may have named it meanwhile.
                    await session.execute(
                        update(m.Conversation)
                        .where(m.Conversation.id == turn.conversation_id, m.Conversation.title.is_(None))
                        .values(title=title)
                    )
                    await session.commit()
            except UpstreamError as error:
                logger.info("no title this time", extra={"error": error.message[:200]})
            except Exception:
                logger.exception("writing a conversation title failed")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
