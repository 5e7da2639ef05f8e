"""``/v1/conversations`` and ``/v1/shares``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from backend.admission.deps import Creations
from backend.conversations.deps import Conversations
from backend.conversations.schemas import (
    Conversation,
    ConversationCreate,
    ConversationDetail,
    ConversationPage,
    ConversationUpdate,
    MessagePage,
    ShareCreated,
    SharedConversation,
    SharedMessage,
    conversation_view,
    message_view,
)
from backend.deps import CurrentUser, SettingsDep
from backend.errors import NotFound, PayloadTooLarge, RateLimited, Unauthorized, error_responses
from backend.pagination import DEFAULT_LIMIT, Cursor, Limit
from backend.security import BEARER


class ConversationController(Controller):
    path = "/v1/conversations"
    tags = ["Conversations"]

    @post(
        "/",
        status_code=201,
        summary="Start a conversation",
        description="`429 rate_limited` past SURGE_ADMISSION_CONVERSATIONS_PER_USER_PER_MIN a minute.",
        responses=error_responses(PayloadTooLarge, Unauthorized, RateLimited),
    )
    async def create(
        self,
        data: JSONBody[ConversationCreate],
        conversations: Conversations,
        current_user: CurrentUser,
        creation_limits: Creations,
    ) -> Conversation:
        await creation_limits.conversation(current_user.id)
        conversation = await conversations.create(current_user.id, title=data.title, model=data.model)
        return conversation_view(conversation)

    @get(
        "/",
        summary="List conversations: pinned first, then by last activity",
        responses=error_responses(Unauthorized),
    )
    async def list_conversations(
        self,
        conversations: Conversations,
        current_user: CurrentUser,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
        archived: FromQuery[bool] = False,
        q: Annotated[
            str | None,
            QueryParameter(max_length=200, description="Search titles and message text (case-insensitive)"),
        ] = None,
    ) -> ConversationPage:
        rows, next_cursor = await conversations.listing(
            current_user.id, archived=archived, query=q, limit=limit, cursor=cursor
        )
        return ConversationPage(data=[conversation_view(row) for row in rows], next_cursor=next_cursor)

    @get(
        "/{conversation_id:uuid}",
        summary="A conversation and its current branch, root first",
        responses=error_responses(Unauthorized, NotFound),
    )
    async def get_conversation(
        self,
        conversation_id: FromPath[UUID],
        conversations: Conversations,
        current_user: CurrentUser,
    ) -> ConversationDetail:
        conversation, branch = await conversations.detail(current_user.id, conversation_id)
        return ConversationDetail(
            conversation=conversation_view(conversation), messages=[message_view(item) for item in branch]
        )

    @patch(
        "/{conversation_id:uuid}",
        summary="Rename, pin, archive or select a branch",
        responses=error_responses(PayloadTooLarge, Unauthorized, NotFound),
    )
    async def update(
        self,
        conversation_id: FromPath[UUID],
        data: JSONBody[ConversationUpdate],
        conversations: Conversations,
        current_user: CurrentUser,
    ) -> Conversation:
        changes = {
            name: value for name, value in msgspec.structs.asdict(data).items() if value is not msgspec.UNSET
        }
        conversation = await conversations.update(current_user.id, conversation_id, changes)
        return conversation_view(conversation)

    @delete(
        "/{conversation_id:uuid}",
        status_code=204,
        summary="Delete a conversation, its messages and shares",
        responses=error_responses(Unauthorized, NotFound),
    )
    async def delete_conversation(
        self,
        conversation_id: FromPath[UUID],
        conversations: Conversations,
        current_user: CurrentUser,
    ) -> None:
        await conversations.delete(current_user.id, conversation_id)

    @get(
        "/{conversation_id:uuid}/messages",
        summary="Every message of the tree, oldest first",
        responses=error_responses(Unauthorized, NotFound),
    )
    async def list_messages(
        self,
        conversation_id: FromPath[UUID],
        conversations: Conversations,
        current_user: CurrentUser,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> MessagePage:
        rows, next_cursor = await conversations.messages(
            current_user.id, conversation_id, limit=limit, cursor=cursor
        )
        return MessagePage(data=[message_view(row) for row in rows], next_cursor=next_cursor)

    @post(
        "/{conversation_id:uuid}/shares",
        status_code=201,
        summary="Share a snapshot of the current branch",
        responses=error_responses(Unauthorized, NotFound),
    )
    async def share(
        self,
        conversation_id: FromPath[UUID],
        conversations: Conversations,
        current_user: CurrentUser,
        settings: SettingsDep,
    ) -> ShareCreated:
        share = await conversations.share(current_user.id, conversation_id)
        # A link for people: the web app's page when it is served, else the API's JSON.
        page = "s" if settings.server.web_enabled else "v1/shares"
        return ShareCreated(
            id=share.id, url=f"{settings.public_base_url}/{page}/{share.id}", created_at=share.created_at
        )


class ShareController(Controller):
    """``/v1/shares/{id}``: public to read, the owner's to delete. One controller for both, outside the
    authenticated router (Litestar cannot split one path between two routers), so the delete declares
    its bearer security itself."""

    path = "/v1/shares"
    tags = ["Conversations"]

    @get(
        "/{share_id:uuid}",
        exclude_from_auth=True,
        summary="Read a shared snapshot (public)",
        responses=error_responses(NotFound),
    )
    async def read(self, share_id: FromPath[UUID], conversations: Conversations) -> SharedConversation:
        share = await conversations.shared(share_id)
        return SharedConversation(
            title=share.title,
            messages=[
                SharedMessage(
                    role=item["role"],
                    content=item["content"],
                    created_at=datetime.fromisoformat(item["created_at"]),
                )
                for item in share.messages
            ],
            created_at=share.created_at,
        )

    @delete(
        "/{share_id:uuid}",
        status_code=204,
        security=BEARER,
        summary="Stop sharing (owner only)",
        responses=error_responses(Unauthorized, NotFound),
    )
    async def unshare(
        self, share_id: FromPath[UUID], conversations: Conversations, current_user: CurrentUser
    ) -> None:
        await conversations.unshare(current_user.id, share_id)
