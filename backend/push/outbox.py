"""The push outbox's one entry point: a finished answer, recorded in the caller's transaction."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from backend.db import models as m


async def enqueue_completion(
    session: AsyncSession, *, user_id: UUID, conversation_id: UUID, message_id: UUID
) -> None:
    """Record that ``message_id`` finished while no client was attached, so its owner gets a push.

    Call it inside the transaction that stores the final message: this only adds a row to ``session``
    (it neither flushes nor commits), so the push exists if and only if that transaction commits. The
    dispatcher then sends it once to each device the user has when it runs. Enqueueing the same message
    twice is harmless: a device never receives one answer twice.
    """
    session.add(m.PushOutbox(user_id=user_id, conversation_id=conversation_id, message_id=message_id))
