"""``client.conversations``: conversations, their message trees, and ``client.conversations.shares``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from surge._options import NOT_GIVEN, NotGiven, RequestOptions, Timeout, given
from surge._pagination import AsyncCursorPage, AsyncPaginator, SyncCursorPage
from surge._resource import AsyncAPIResource, SyncAPIResource, path
from surge._types import Conversation, ConversationDetail, Message, Share, SharedConversation

if TYPE_CHECKING:
    from surge._base_client import AsyncAPIClient, SyncAPIClient

__all__ = ["AsyncConversations", "AsyncShares", "Conversations", "Shares"]

Headers = Mapping[str, str] | None


def _create(
    title: str | None, model: str | None, timeout: Timeout | NotGiven, headers: Headers
) -> RequestOptions:
    body = {name: value for name, value in (("title", title), ("model", model)) if value is not None}
    # Not replay-safe: a create the server performed would leave a second, empty conversation.
    return RequestOptions(
        method="POST",
        path="/v1/conversations",
        body=body,
        replay_safe=False,
        timeout=timeout,
        headers=headers,
    )


def _list(
    limit: int | None,
    archived: bool | None,
    q: str | None,
    cursor: str | None,
    timeout: Timeout | NotGiven,
    headers: Headers,
) -> RequestOptions:
    params = {"limit": limit, "archived": archived, "q": q, "cursor": cursor}
    return RequestOptions(
        method="GET", path="/v1/conversations", params=params, timeout=timeout, headers=headers
    )


def _one(
    method: str, conversation_id: str, timeout: Timeout | NotGiven, headers: Headers, body: object = None
) -> RequestOptions:
    return RequestOptions(
        method=method,
        path=path("/v1/conversations/{}", conversation_id),
        body=body,
        timeout=timeout,
        headers=headers,
    )


def _messages(
    conversation_id: str, limit: int | None, cursor: str | None, timeout: Timeout | NotGiven, headers: Headers
) -> RequestOptions:
    return RequestOptions(
        method="GET",
        path=path("/v1/conversations/{}/messages", conversation_id),
        params={"limit": limit, "cursor": cursor},
        timeout=timeout,
        headers=headers,
    )


def _create_share(conversation_id: str, timeout: Timeout | NotGiven, headers: Headers) -> RequestOptions:
    return RequestOptions(
        method="POST",
        path=path("/v1/conversations/{}/shares", conversation_id),
        replay_safe=False,
        timeout=timeout,
        headers=headers,
    )


def _one_share(method: str, share_id: str, timeout: Timeout | NotGiven, headers: Headers) -> RequestOptions:
    # Reading a share is public: no token is sent, so a signed-out client can open a link.
    return RequestOptions(
        method=method,
        path=path("/v1/shares/{}", share_id),
        authenticated=method != "GET",
        timeout=timeout,
        headers=headers,
    )


class Shares(SyncAPIResource):
    """Public links to a snapshot of a conversation's current branch."""

    def create(
        self, conversation_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> Share:
        """Share the current branch as of now (``POST /v1/conversations/{id}/shares``)."""
        options = _create_share(conversation_id, timeout, extra_headers)
        return self._client.request_json(options, Share)

    def get(
        self, share_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> SharedConversation:
        """What anyone with the link sees (``GET /v1/shares/{id}``; needs no sign-in)."""
        options = _one_share("GET", share_id, timeout, extra_headers)
        return self._client.request_json(options, SharedConversation)

    def delete(
        self, share_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> None:
        """Stop sharing (``DELETE /v1/shares/{id}``, owner only)."""
        self._client.request_none(_one_share("DELETE", share_id, timeout, extra_headers))


class Conversations(SyncAPIResource):
    def __init__(self, client: SyncAPIClient) -> None:
        super().__init__(client)
        self.shares = Shares(client)

    def create(
        self,
        *,
        title: str | None = None,
        model: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> Conversation:
        """Start a conversation (``POST /v1/conversations``); ``model`` defaults to the server's."""
        return self._client.request_json(_create(title, model, timeout, extra_headers), Conversation)

    def list(
        self,
        *,
        limit: int | None = None,
        archived: bool | None = None,
        q: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> SyncCursorPage[Conversation]:
        """Pinned first, then by last activity (``GET /v1/conversations``). Iterating the page goes on
        through the next ones; ``archived=True`` lists the archive, ``q`` searches titles and messages."""

        def fetch(cursor: str | None) -> SyncCursorPage[Conversation]:
            options = _list(limit, archived, q, cursor, timeout, extra_headers)
            return self._client.request_page(options, Conversation, fetch)

        return fetch(None)

    def get(
        self, conversation_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> ConversationDetail:
        """The conversation and its current branch, root first (``GET /v1/conversations/{id}``)."""
        return self._client.request_json(
            _one("GET", conversation_id, timeout, extra_headers), ConversationDetail
        )

    def update(
        self,
        conversation_id: str,
        *,
        title: str | NotGiven | None = NOT_GIVEN,
        pinned: bool | NotGiven = NOT_GIVEN,
        archived: bool | NotGiven = NOT_GIVEN,
        current_leaf_id: str | NotGiven = NOT_GIVEN,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> Conversation:
        """Rename, pin, archive, or select the branch ending at (or through) ``current_leaf_id``."""
        body = given(title=title, pinned=pinned, archived=archived, current_leaf_id=current_leaf_id)
        return self._client.request_json(
            _one("PATCH", conversation_id, timeout, extra_headers, body), Conversation
        )

    def delete(
        self, conversation_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> None:
        """Delete the conversation with its messages and shares (``DELETE /v1/conversations/{id}``)."""
        self._client.request_none(_one("DELETE", conversation_id, timeout, extra_headers))

    def messages(
        self,
        conversation_id: str,
        *,
        limit: int | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> SyncCursorPage[Message]:
        """Every message of the tree, oldest first, each with its ``parent_id``
        (``GET /v1/conversations/{id}/messages``)."""

        def fetch(cursor: str | None) -> SyncCursorPage[Message]:
            options = _messages(conversation_id, limit, cursor, timeout, extra_headers)
            return self._client.request_page(options, Message, fetch)

        return fetch(None)


class AsyncShares(AsyncAPIResource):
    """Public links to a snapshot of a conversation's current branch."""

    async def create(
        self, conversation_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> Share:
        """Share the current branch as of now (``POST /v1/conversations/{id}/shares``)."""
        options = _create_share(conversation_id, timeout, extra_headers)
        return await self._client.request_json(options, Share)

    async def get(
        self, share_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> SharedConversation:
        """What anyone with the link sees (``GET /v1/shares/{id}``; needs no sign-in)."""
        options = _one_share("GET", share_id, timeout, extra_headers)
        return await self._client.request_json(options, SharedConversation)

    async def delete(
        self, share_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> None:
        """Stop sharing (``DELETE /v1/shares/{id}``, owner only)."""
        await self._client.request_none(_one_share("DELETE", share_id, timeout, extra_headers))


class AsyncConversations(AsyncAPIResource):
    def __init__(self, client: AsyncAPIClient) -> None:
        super().__init__(client)
        self.shares = AsyncShares(client)

    async def create(
        self,
        *,
        title: str | None = None,
        model: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> Conversation:
        """Start a conversation (``POST /v1/conversations``); ``model`` defaults to the server's."""
        return await self._client.request_json(_create(title, model, timeout, extra_headers), Conversation)

    def list(
        self,
        *,
        limit: int | None = None,
        archived: bool | None = None,
        q: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> AsyncPaginator[Conversation]:
        """Pinned first, then by last activity (``GET /v1/conversations``). ``await`` it for the first page,
        or ``async for`` over it for every conversation."""

        async def fetch(cursor: str | None) -> AsyncCursorPage[Conversation]:
            options = _list(limit, archived, q, cursor, timeout, extra_headers)
            return await self._client.request_page(options, Conversation, fetch)

        return AsyncPaginator(lambda: fetch(None))

    async def get(
        self, conversation_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> ConversationDetail:
        """The conversation and its current branch, root first (``GET /v1/conversations/{id}``)."""
        return await self._client.request_json(
            _one("GET", conversation_id, timeout, extra_headers), ConversationDetail
        )

    async def update(
        self,
        conversation_id: str,
        *,
        title: str | NotGiven | None = NOT_GIVEN,
        pinned: bool | NotGiven = NOT_GIVEN,
        archived: bool | NotGiven = NOT_GIVEN,
        current_leaf_id: str | NotGiven = NOT_GIVEN,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> Conversation:
        """Rename, pin, archive, or select the branch ending at (or through) ``current_leaf_id``."""
        body = given(title=title, pinned=pinned, archived=archived, current_leaf_id=current_leaf_id)
        return await self._client.request_json(
            _one("PATCH", conversation_id, timeout, extra_headers, body), Conversation
        )

    async def delete(
        self, conversation_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> None:
        """Delete the conversation with its messages and shares (``DELETE /v1/conversations/{id}``)."""
        await self._client.request_none(_one("DELETE", conversation_id, timeout, extra_headers))

    def messages(
        self,
        conversation_id: str,
        *,
        limit: int | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> AsyncPaginator[Message]:
        """Every message of the tree, oldest first, each with its ``parent_id``."""

        async def fetch(cursor: str | None) -> AsyncCursorPage[Message]:
            options = _messages(conversation_id, limit, cursor, timeout, extra_headers)
            return await self._client.request_page(options, Message, fetch)

        return AsyncPaginator(lambda: fetch(None))
