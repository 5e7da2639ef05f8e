"""Request and response shapes of the turn routes (API.md, "Turns")."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import msgspec

from backend.conversations.schemas import Message

ModelId = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
# The upper bound is a setting (SURGE_CONTENT_MAX_CHARS, 413 beyond it); this only stops absurd bodies.
Content = Annotated[str, msgspec.Meta(min_length=1, max_length=1_000_000)]
Comment = Annotated[str, msgspec.Meta(max_length=2000)]


class SendMessage(msgspec.Struct):
    """A user message and how to answer it. Without ``parent_id`` it continues the current branch;
    naming an earlier message's parent edits that message (the new one becomes its sibling), and
    ``"parent_id": null`` edits the first message (a new root)."""

    content: Content
    parent_id: UUID | msgspec.UnsetType | None = msgspec.UNSET
    model: ModelId | None = None
    thinking: bool | None = None
    stream: bool = False


class Regenerate(msgspec.Struct):
    model: ModelId | None = None
    thinking: bool | None = None
    stream: bool = False


class Feedback(msgspec.Struct):
    rating: Literal["up", "down"] | None
    comment: Comment | None = None


class TurnCreated(msgspec.Struct):
    """The two messages of a turn: the user's, and the assistant's answer (``queued`` at first)."""

    user_message: Message
    assistant_message: Message
