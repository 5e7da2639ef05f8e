"""The API's shapes as msgspec Structs, field for field as API.md defines them.

IDs are opaque strings and timestamps timezone-aware datetimes. Unknown fields sent by a newer server
are ignored, so an older SDK keeps working when the API grows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

__all__ = [
    "AccountUsage",
    "ApiKey",
    "Conversation",
    "ConversationDetail",
    "CreatedApiKey",
    "Device",
    "FirebaseSession",
    "Health",
    "Message",
    "MessageError",
    "Model",
    "Platform",
    "Rating",
    "Readiness",
    "Session",
    "Share",
    "SharedConversation",
    "SharedMessage",
    "Tier",
    "Turn",
    "Usage",
    "User",
]

Tier = Literal["free", "plus", "admin"]
Role = Literal["user", "assistant"]
MessageStatus = Literal["queued", "streaming", "complete", "cancelled", "failed"]
FinishReason = Literal["stop", "length", "cancelled", "error"]
Rating = Literal["up", "down"]
Platform = Literal["ios", "android", "web"]
Thinking = Literal["always", "optional", "never"]


class SurgeModel(msgspec.Struct, kw_only=True):
    """Base of every result: keyword construction, ``to_dict()`` for JSON-friendly builtins."""

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


class User(SurgeModel, kw_only=True):
    id: str
    email: str | None
    display_name: str | None
    tier: Tier
    created_at: datetime


class Session(SurgeModel, kw_only=True):
    """What sign-up, login and refresh answer; the client keeps the tokens in its token store."""

    user: User
    access_token: str
    refresh_token: str
    expires_in: int
    """Seconds until ``access_token`` expires."""
    token_type: Literal["bearer"] = "bearer"  # noqa: S105  (the scheme, not a secret)

    def __repr__(self) -> str:
        # Tokens are secrets: keep them out of logs and tracebacks that print a session.
        shown = (
            f"{name}='***'"
            if name in ("access_token", "refresh_token")
            else f"{name}={getattr(self, name)!r}"
            for name in self.__struct_fields__
        )
        return f"{type(self).__name__}({', '.join(shown)})"


class FirebaseSession(Session, kw_only=True):
    """A session from a Firebase ID token; ``created`` says whether this sign-in made a new account."""

    created: bool = False


class AccountUsage(SurgeModel, kw_only=True):
    """``GET /v1/me/usage``: the tier's limits, what has been used of them, and when the window resets."""

    tier: Tier
    limits: dict[str, Any]
    used: dict[str, Any]
    resets_at: datetime | None = None


class Device(SurgeModel, kw_only=True):
    """A device registered for push notifications (its push token is write-only, never returned)."""

    id: str
    platform: Platform
    created_at: datetime
    last_seen_at: datetime
    app_version: str | None = None
    locale: str | None = None


class ApiKey(SurgeModel, kw_only=True):
    """An API key for the OpenAI-compatible API, as listed: never its secret."""

    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None


class CreatedApiKey(SurgeModel, kw_only=True):
    """A new API key: ``secret`` (``sk-surge-…``) is shown only in this answer; keep it now."""

    id: str
    name: str
    prefix: str
    secret: str
    created_at: datetime


class Model(SurgeModel, kw_only=True):
    id: str
    display_name: str
    thinking: Thinking
    """``always`` (a reasoning model), ``optional`` (per turn with ``thinking=``) or ``never``."""
    context_tokens: int
    max_output_tokens: int


class Conversation(SurgeModel, kw_only=True):
    id: str
    title: str | None
    model: str
    pinned: bool
    archived: bool
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None


class Usage(SurgeModel, kw_only=True):
    """Tokens one answer used; ``cached_tokens`` of the prompt were served from the KV cache."""

    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int


class MessageError(SurgeModel, kw_only=True):
    """Why an assistant message failed: the ``code`` and ``message`` of its ``error`` event."""

    code: str
    message: str


class Message(SurgeModel, kw_only=True):
    """A node of a conversation's message tree."""

    id: str
    conversation_id: str
    parent_id: str | None
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


class Turn(SurgeModel, kw_only=True):
    """A user message and the assistant message answering it (``queued`` when just accepted)."""

    user_message: Message
    assistant_message: Message


class ConversationDetail(SurgeModel, kw_only=True):
    """A conversation and its current branch, root first."""

    conversation: Conversation
    messages: list[Message]


class Share(SurgeModel, kw_only=True):
    """A public link to a snapshot of a conversation's current branch."""

    id: str
    url: str
    created_at: datetime


class SharedMessage(SurgeModel, kw_only=True):
    role: Role
    content: str
    created_at: datetime


class SharedConversation(SurgeModel, kw_only=True):
    """What anyone with a share link sees: no reasoning, no ids of the owner."""

    title: str | None
    messages: list[SharedMessage]
    created_at: datetime


class Health(SurgeModel, kw_only=True):
    """``GET /healthz``: the process is alive."""

    status: str


class Readiness(SurgeModel, kw_only=True):
    """``GET /readyz``: whether this replica can serve, and the result of each check (``"ok"`` or why not)."""

    status: str
    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return self.status == "ok"
