"""The turn routes: send, regenerate, read, the event stream, cancel, feedback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from uuid import UUID

from litestar import Controller, Response, get, post, put
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.response import Stream

from backend.admission.deps import ClientIp, TurnRate
from backend.chat.deps import Streams, Turns
from backend.chat.schemas import Feedback, Regenerate, SendMessage, TurnCreated
from backend.chat.service import AcceptedTurn, AnswerRequest, TurnRequest
from backend.chat.sse_schema import TurnEventStream
from backend.chat.stream import TurnStreams, parse_after
from backend.conversations.schemas import Message, message_view
from backend.deps import CurrentUser
from backend.errors import (
    Conflict,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
    UpstreamUnavailable,
    error_responses,
)

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        max_length=255,
        description="Retrying with the same key and body returns the original turn (kept 24 h); "
        "the same key with another body is 409.",
    ),
]
After = Annotated[
    int | None,
    QueryParameter(
        ge=0,
        description="Replay the events after this seq (default: all of them)",
        # Litestar puts no bound on an optional integer's schema: state it (it constrains only numbers).
        schema_extra={"minimum": 0},
    ),
]
LastEventId = Annotated[
    str | None, HeaderParameter(name="Last-Event-ID", description="What EventSource sends on reconnect")
]

EVENT_STREAM_DOC = ResponseSpec(
    data_container=TurnEventStream,
    media_type="text/event-stream",
    description="Server-Sent Events: `id:` is the seq, `event:` the name, `data:` JSON "
    "(API.md, The event stream)",
    generate_examples=False,
)


def turn_created(accepted: AcceptedTurn) -> TurnCreated:
    return TurnCreated(
        user_message=message_view(accepted.user_message),
        assistant_message=message_view(accepted.assistant_message),
    )


async def answer(
    streams: TurnStreams, user_id: UUID, stream: bool, accept: Callable[[], Awaitable[AcceptedTurn]]
) -> Response[TurnCreated] | Stream:
    """Accept a turn and answer 202, or its event stream. A stream's slot is taken first: a user with
    too many streams open is refused (429) before a turn is created that nobody asked to watch."""
    slot = streams.slots.take(user_id) if stream else None
    try:
        accepted = await accept()
    except BaseException:
        if slot is not None:
            slot.release()
        raise
    created = turn_created(accepted)
    if slot is None:
        return Response(created, status_code=202)
    return streams.sse(accepted.assistant_message, 0, slot=slot, opening=("turn", created))


TURN_ERRORS = error_responses(
    Unauthorized,
    NotFound,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    QuotaExceeded,
    Overloaded,
    UpstreamUnavailable,
)


# A function, not a TurnController method: Litestar refuses two controllers sharing a path (the
# conversation tree is GET on this same path), but accepts a controller and a plain handler.
@post(
    "/v1/conversations/{conversation_id:uuid}/messages",
    tags=["Turns"],
    summary="Send a message; the answer is generated whether or not this connection stays",
    description="`stream: false` answers 202 with both messages; `stream: true` answers 200 "
    "`text/event-stream` whose first event is `turn` (the same object), then the answer's events.",
    status_code=202,
    responses={**TURN_ERRORS, 200: EVENT_STREAM_DOC},
)
async def send_message(
    conversation_id: FromPath[UUID],
    data: JSONBody[SendMessage],
    turns: Turns,
    streams: Streams,
    current_user: CurrentUser,
    turn_rate_limit: TurnRate,
    client_ip: ClientIp,
    idempotency_key: IdempotencyKey = None,
) -> Response[TurnCreated] | Stream:
    await turn_rate_limit.check(current_user.id, client_ip)
    request = TurnRequest(
        content=data.content, parent_id=data.parent_id, model=data.model, thinking=data.thinking
    )
    return await answer(
        streams,
        current_user.id,
        data.stream,
        lambda: turns.send(current_user, conversation_id, request, idempotency_key),
    )


class TurnController(Controller):
    tags = ["Turns"]

    @post(
        "/v1/messages/{message_id:uuid}/regenerate",
        summary="A new answer to the same user message, as a sibling",
        status_code=202,
        responses={**TURN_ERRORS, 200: EVENT_STREAM_DOC},
    )
    async def regenerate(
        self,
        message_id: FromPath[UUID],
        data: JSONBody[Regenerate],
        turns: Turns,
        streams: Streams,
        current_user: CurrentUser,
        turn_rate_limit: TurnRate,
        client_ip: ClientIp,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[TurnCreated] | Stream:
        await turn_rate_limit.check(current_user.id, client_ip)
        request = AnswerRequest(model=data.model, thinking=data.thinking)
        return await answer(
            streams,
            current_user.id,
            data.stream,
            lambda: turns.regenerate(current_user, message_id, request, idempotency_key),
        )

    @get(
        "/v1/messages/{message_id:uuid}",
        summary="A message (an answer's text so far while it streams)",
        responses=error_responses(Unauthorized, NotFound),
    )
    async def get_message(
        self, message_id: FromPath[UUID], turns: Turns, current_user: CurrentUser
    ) -> Message:
        return message_view(await turns.message(current_user.id, message_id))

    @get(
        "/v1/messages/{message_id:uuid}/events",
        summary="The answer's events after `after` (or Last-Event-ID), then live until done or error",
        description="Works for finished answers too. A finished answer whose event log has expired "
        "(SURGE_EVENT_LOG_TTL_S) is replayed compactly: started, the whole reasoning, the whole content, "
        "then the terminal event.",
        responses={**error_responses(Unauthorized, NotFound, RateLimited), 200: EVENT_STREAM_DOC},
    )
    async def events(
        self,
        message_id: FromPath[UUID],
        turns: Turns,
        streams: Streams,
        current_user: CurrentUser,
        after: After = None,
        last_event_id: LastEventId = None,
    ) -> Stream:
        # The service's session is closed before the stream starts: a stream holds no connection.
        message = await turns.owned_answer(current_user.id, message_id)
        slot = streams.slots.take(current_user.id)
        return streams.sse(message, parse_after(after, last_event_id), slot=slot)

    @post(
        "/v1/messages/{message_id:uuid}/cancel",
        status_code=200,
        summary="Stop the answer upstream; its partial text is kept",
        responses=error_responses(Unauthorized, NotFound),
    )
    async def cancel(self, message_id: FromPath[UUID], turns: Turns, current_user: CurrentUser) -> Message:
        return message_view(await turns.cancel(current_user, message_id))

    @put(
        "/v1/messages/{message_id:uuid}/feedback",
        summary="Rate an answer (null clears the rating)",
        responses=error_responses(PayloadTooLarge, Unauthorized, NotFound),
    )
    async def feedback(
        self,
        message_id: FromPath[UUID],
        data: JSONBody[Feedback],
        turns: Turns,
        current_user: CurrentUser,
    ) -> Message:
        return message_view(await turns.feedback(current_user, message_id, data.rating, data.comment))
