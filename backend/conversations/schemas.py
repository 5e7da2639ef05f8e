"""Request and response shapes of conversations, messages and shares (API.md, "Conversations")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from backend.db import models as _models

Role = Literal["user", "assistant"]
MessageStatus = Literal["queued", "streaming", "complete", "cancelled", "failed"]
FinishReason = Literal["stop", "length", "cancelled", "error"]
Rating = Literal["up", "down"]
Title = Annotated[str, msgspec.Meta(max_length=200)]
ModelId = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class Conversation(msgspec.Struct):
    id: UUID
    title: str | None
    model: str
    pinned: bool
    archived: bool
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int


class MessageError(msgspec.Struct):
    """Why an assistant message failed: the ``code`` and ``message`` of its ``error`` event."""

    code: str
    message: str


class Message(msgspec.Struct):
    id: UUID
    conversation_id: UUID
    parent_id: UUID | None
    role: Role
    content: str
    reasoning: str | None
    status: MessageStatus
    model: str | None
    finish_reason: FinishReason | None
    error: MessageError | None
    usage: Usage | None
    feedback: Rating | None
    created_at: datetime
    completed_at: datetime | None


class ConversationCreate(msgspec.Struct):
    title: Title | None = None
    model: ModelId | None = None


class ConversationUpdate(msgspec.Struct):
    """Only the fields sent change. ``current_leaf_id`` selects a branch: any message of the conversation,
    whose most recent descendant becomes the current leaf."""

    title: Title | msgspec.UnsetType | None = msgspec.UNSET
    pinned: bool | msgspec.UnsetType = msgspec.UNSET
    archived: bool | msgspec.UnsetType = msgspec.UNSET
    current_leaf_id: UUID | msgspec.UnsetType = msgspec.UNSET


class ConversationDetail(msgspec.Struct):
    """A conversation and its current branch, root first."""

    conversation: Conversation
    messages: list[Message]


class ConversationPage(msgspec.Struct):
    data: list[Conversation]
    next_cursor: str | None


class MessagePage(msgspec.Struct):
    data: list[Message]
    next_cursor: str | None


class ShareCreated(msgspec.Struct):
    id: UUID
    url: str
    created_at: datetime


class SharedMessage(msgspec.Struct):
    role: Role
    content: str
    created_at: datetime


class SharedConversation(msgspec.Struct):
    """A public snapshot: no reasoning, no ids of the owner."""

    title: str | None
    messages: list[SharedMessage]
    created_at: datetime


def conversation_view(conversation: _models.Conversation) -> Conversation:
    return Conversation(
        id=conversation.id,
        title=conversation.title,
        model=conversation.model,
        pinned=conversation.pinned,
        archived=conversation.archived,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        last_message_at=conversation.last_message_at,
    )


def message_view(message: _models.Message) -> Message:
    usage = None
    if message.prompt_tokens is not None:
        usage = Usage(
            prompt_tokens=message.prompt_tokens,
            completion_tokens=message.completion_tokens or 0,
            reasoning_tokens=message.reasoning_tokens or 0,
            cached_tokens=message.cached_tokens or 0,
        )
    error = None
    if message.error_code is not None:
        error = MessageError(code=message.error_code, message=message.error_message or "")
    return Message(
        id=message.id,
        conversation_id=message.conversation_id,
        parent_id=message.parent_id,
        role=message.role,  # type: ignore[arg-type]
        content=message.content,
        reasoning=message.reasoning,
        status=message.status,  # type: ignore[arg-type]
        model=message.model,
        finish_reason=message.finish_reason,  # type: ignore[arg-type]
        error=error,
        usage=usage,
        feedback=message.feedback,  # type: ignore[arg-type]
        created_at=message.created_at,
        completed_at=message.completed_at,
    )
