"""``client.messages``: send a message and get the answer, streamed or not; regenerate, cancel, rate."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from surge._options import NOT_GIVEN, NotGiven, RequestOptions, Timeout
from surge._resource import AsyncAPIResource, SyncAPIResource, path
from surge._streaming import AsyncMessageStream, MessageStream
from surge._types import Message, Rating, Turn

__all__ = ["AsyncMessages", "Messages", "new_idempotency_key"]

Headers = Mapping[str, str] | None


def new_idempotency_key() -> str:
    """A fresh ``Idempotency-Key``: one per send, the same on each of its retries."""
    return f"surge-sdk-{uuid.uuid4()}"


def _turn_body(
    stream: bool, *, parent_id: str | NotGiven | None = NOT_GIVEN, **fields: Any
) -> dict[str, Any]:
    body = {name: value for name, value in fields.items() if value is not None}
    if not isinstance(parent_id, NotGiven):
        body["parent_id"] = parent_id  # None is sent as null: a new root, the first message edited
    body["stream"] = stream
    return body


def _stream_headers(stream: bool, headers: Headers) -> dict[str, str]:
    return {**({"Accept": "text/event-stream"} if stream else {}), **(headers or {})}


def _send(
    conversation_id: str,
    content: str,
    *,
    parent_id: str | NotGiven | None,
    model: str | None,
    thinking: bool | None,
    stream: bool,
    idempotency_key: str | None,
    timeout: Timeout | NotGiven,
    headers: Headers,
) -> RequestOptions:
    return RequestOptions(
        method="POST",
        path=path("/v1/conversations/{}/messages", conversation_id),
        body=_turn_body(stream, content=content, parent_id=parent_id, model=model, thinking=thinking),
        idempotency_key=idempotency_key or new_idempotency_key(),
        timeout=timeout,
        headers=_stream_headers(stream, headers),
    )


def _regenerate(
    message_id: str,
    *,
    model: str | None,
    thinking: bool | None,
    stream: bool,
    idempotency_key: str | None,
    timeout: Timeout | NotGiven,
    headers: Headers,
) -> RequestOptions:
    return RequestOptions(
        method="POST",
        path=path("/v1/messages/{}/regenerate", message_id),
        body=_turn_body(stream, model=model, thinking=thinking),
        idempotency_key=idempotency_key or new_idempotency_key(),
        timeout=timeout,
        headers=_stream_headers(stream, headers),
    )


def _message(
    method: str,
    template: str,
    message_id: str,
    timeout: Timeout | NotGiven,
    headers: Headers,
    body: Any = None,
) -> RequestOptions:
    # Cancel and feedback are replay-safe: cancelling twice, or setting the same rating twice, is one change.
    return RequestOptions(
        method=method,
        path=path(template, message_id),
        body=body,
        replay_safe=True,
        timeout=timeout,
        headers=headers,
    )


def _feedback_body(rating: Rating | None, comment: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"rating": rating}
    if comment is not None:
        body["comment"] = comment
    return body


class Messages(SyncAPIResource):
    def send(
        self,
        conversation_id: str,
        content: str,
        *,
        parent_id: str | NotGiven | None = NOT_GIVEN,
        model: str | None = None,
        thinking: bool | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> Turn:
        """Send a message; the answer is generated on the server whether or not anyone listens.

        Returns at once with the user message and the ``queued`` assistant message; follow the answer with
        ``events(turn.assistant_message.id)`` or poll ``get()``. ``parent_id`` (default: the current leaf)
        edits history by branching; ``parent_id=None`` starts a new root, as an edit of the first message
        does. Retries reuse one ``Idempotency-Key``, so they never start a second turn.
        """
        options = _send(
            conversation_id,
            content,
            parent_id=parent_id,
            model=model,
            thinking=thinking,
            stream=False,
            idempotency_key=idempotency_key,
            timeout=timeout,
            headers=extra_headers,
        )
        return self._client.request_json(options, Turn)

    def stream(
        self,
        conversation_id: str,
        content: str,
        *,
        parent_id: str | NotGiven | None = NOT_GIVEN,
        model: str | None = None,
        thinking: bool | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> MessageStream:
        """Send a message and stream its answer: a context manager of typed events that resumes by itself
        when the connection drops."""
        options = _send(
            conversation_id,
            content,
            parent_id=parent_id,
            model=model,
            thinking=thinking,
            stream=True,
            idempotency_key=idempotency_key,
            timeout=timeout,
            headers=extra_headers,
        )
        return MessageStream(
            self._client, start=options, message_id=None, timeout=timeout, extra_headers=extra_headers
        )

    def regenerate(
        self,
        message_id: str,
        *,
        model: str | None = None,
        thinking: bool | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> Turn:
        """A new answer to the same user message, as a sibling of assistant message ``message_id``."""
        options = _regenerate(
            message_id,
            model=model,
            thinking=thinking,
            stream=False,
            idempotency_key=idempotency_key,
            timeout=timeout,
            headers=extra_headers,
        )
        return self._client.request_json(options, Turn)

    def stream_regenerate(
        self,
        message_id: str,
        *,
        model: str | None = None,
        thinking: bool | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> MessageStream:
        """Regenerate and stream the new answer (see ``stream()``)."""
        options = _regenerate(
            message_id,
            model=model,
            thinking=thinking,
            stream=True,
            idempotency_key=idempotency_key,
            timeout=timeout,
            headers=extra_headers,
        )
        return MessageStream(
            self._client, start=options, message_id=None, timeout=timeout, extra_headers=extra_headers
        )

    def events(
        self,
        message_id: str,
        *,
        after: int = 0,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> MessageStream:
        """Follow an assistant message's events after ``seq`` ``after``: a replay of what happened, then
        live until ``done``/``error`` (``GET /v1/messages/{id}/events``). Resumes by itself too."""
        return MessageStream(
            self._client,
            start=None,
            message_id=message_id,
            after=after,
            timeout=timeout,
            extra_headers=extra_headers,
        )

    def get(
        self, message_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> Message:
        """A message; while it streams, its content so far (``GET /v1/messages/{id}``)."""
        return self._client.request_json(
            _message("GET", "/v1/messages/{}", message_id, timeout, extra_headers), Message
        )

    def cancel(
        self, message_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> Message:
        """Stop generating; the partial answer is kept with status ``cancelled``."""
        options = _message("POST", "/v1/messages/{}/cancel", message_id, timeout, extra_headers)
        return self._client.request_json(options, Message)

    def feedback(
        self,
        message_id: str,
        rating: Rating | None,
        *,
        comment: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> Message:
        """Rate an answer ``"up"`` or ``"down"`` (``None`` withdraws the rating), with an optional comment."""
        options = _message(
            "PUT",
            "/v1/messages/{}/feedback",
            message_id,
            timeout,
            extra_headers,
            _feedback_body(rating, comment),
        )
        return self._client.request_json(options, Message)


class AsyncMessages(AsyncAPIResource):
    async def send(
        self,
        conversation_id: str,
        content: str,
        *,
        parent_id: str | NotGiven | None = NOT_GIVEN,
        model: str | None = None,
        thinking: bool | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> Turn:
        """Send a message; returns at once with the user message and the ``queued`` assistant message
        (see ``Messages.send``)."""
        options = _send(
            conversation_id,
            content,
            parent_id=parent_id,
            model=model,
            thinking=thinking,
            stream=False,
            idempotency_key=idempotency_key,
            timeout=timeout,
            headers=extra_headers,
        )
        return await self._client.request_json(options, Turn)

    def stream(
        self,
        conversation_id: str,
        content: str,
        *,
        parent_id: str | NotGiven | None = NOT_GIVEN,
        model: str | None = None,
        thinking: bool | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> AsyncMessageStream:
        """Send a message and stream its answer: ``async with`` it; it resumes by itself."""
        options = _send(
            conversation_id,
            content,
            parent_id=parent_id,
            model=model,
            thinking=thinking,
            stream=True,
            idempotency_key=idempotency_key,
            timeout=timeout,
            headers=extra_headers,
        )
        return AsyncMessageStream(
            self._client, start=options, message_id=None, timeout=timeout, extra_headers=extra_headers
        )

    async def regenerate(
        self,
        message_id: str,
        *,
        model: str | None = None,
        thinking: bool | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> Turn:
        """A new answer to the same user message, as a sibling of assistant message ``message_id``."""
        options = _regenerate(
            message_id,
            model=model,
            thinking=thinking,
            stream=False,
            idempotency_key=idempotency_key,
            timeout=timeout,
            headers=extra_headers,
        )
        return await self._client.request_json(options, Turn)

    def stream_regenerate(
        self,
        message_id: str,
        *,
        model: str | None = None,
        thinking: bool | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> AsyncMessageStream:
        """Regenerate and stream the new answer (see ``stream()``)."""
        options = _regenerate(
            message_id,
            model=model,
            thinking=thinking,
            stream=True,
            idempotency_key=idempotency_key,
            timeout=timeout,
            headers=extra_headers,
        )
        return AsyncMessageStream(
            self._client, start=options, message_id=None, timeout=timeout, extra_headers=extra_headers
        )

    def events(
        self,
        message_id: str,
        *,
        after: int = 0,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> AsyncMessageStream:
        """Follow an assistant message's events after ``seq`` ``after`` (replay, then live)."""
        return AsyncMessageStream(
            self._client,
            start=None,
            message_id=message_id,
            after=after,
            timeout=timeout,
            extra_headers=extra_headers,
        )

    async def get(
        self, message_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> Message:
        """A message; while it streams, its content so far (``GET /v1/messages/{id}``)."""
        return await self._client.request_json(
            _message("GET", "/v1/messages/{}", message_id, timeout, extra_headers), Message
        )

    async def cancel(
        self, message_id: str, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Headers = None
    ) -> Message:
        """Stop generating; the partial answer is kept with status ``cancelled``."""
        options = _message("POST", "/v1/messages/{}/cancel", message_id, timeout, extra_headers)
        return await self._client.request_json(options, Message)

    async def feedback(
        self,
        message_id: str,
        rating: Rating | None,
        *,
        comment: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Headers = None,
    ) -> Message:
        """Rate an answer ``"up"`` or ``"down"`` (``None`` withdraws the rating), with an optional comment."""
        options = _message(
            "PUT",
            "/v1/messages/{}/feedback",
            message_id,
            timeout,
            extra_headers,
            _feedback_body(rating, comment),
        )
        return await self._client.request_json(options, Message)
