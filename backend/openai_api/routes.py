"""``/openai/v1/models`` and ``/openai/v1/chat/completions``: OpenAI's Chat Completions API for any OpenAI
client, authenticated by an API key (``backend.api_keys``) and answering errors in OpenAI's shape (the
router's own exception handlers: ``backend.openai_api.errors``)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from litestar import Response, Router, get, post
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import JSONBody
from litestar.response import Stream

from backend.admission.deps import ClientIp
from backend.deps import CurrentUser, SettingsDep
from backend.errors import Overloaded, PayloadTooLarge, QuotaExceeded, RateLimited
from backend.inference.wire import UpstreamError
from backend.openai_api.deps import Completions
from backend.openai_api.errors import OPENAI_EXCEPTION_HANDLERS, ModelNotFound, openai_error_responses
from backend.openai_api.ownership import OwnedStream
from backend.openai_api.responses import collect, sse
from backend.openai_api.schemas import ChatCompletion, ChatCompletionRequest, ModelCard, ModelCardList
from backend.openai_api.service import Caller
from backend.security import API_KEY

OPENAI_PREFIX = "/openai/v1"
STREAM_DOC = (
    "OpenAI's Chat Completions. Stateless: the `messages` are the whole context, nothing is stored as a "
    "conversation. With `stream: true` the answer is `text/event-stream`: `data:` lines of "
    "`chat.completion.chunk` (the first with the role, then `content` / `reasoning_content` deltas, one "
    "with `finish_reason`, one with `usage` and empty `choices` when `stream_options.include_usage`), "
    "then `data: [DONE]`; hanging up cancels the request upstream. The account's tier applies: its rate "
    "limits, its quota (one window with conversation turns), the fair queue and the degrade ladder."
)


@get(
    "/models",
    summary="Models (OpenAI's list shape)",
    responses=openai_error_responses(),
)
async def openai_models(settings: SettingsDep) -> ModelCardList:
    # The models file has no creation times: the Unix epoch is OpenAI's "unknown".
    return ModelCardList(
        data=[ModelCard(id=spec.id, created=0, owned_by="surge") for spec in settings.inference.models]
    )


@dataclass
class CompletionOperation(Operation):
    """The operation of ``/chat/completions``: its 200 is JSON, or (``stream: true``) an event stream."""

    def __post_init__(self) -> None:
        success = (self.responses or {}).get("200")
        if isinstance(success, OpenAPIResponse) and success.content is not None:
            success.content["text/event-stream"] = OpenAPIMediaType(
                schema=Schema(type=OpenAPIType.STRING, description="`data:` lines of chat.completion.chunk")
            )


@post(
    "/chat/completions",
    status_code=200,
    operation_class=CompletionOperation,
    summary="Create a chat completion (streamed or not)",
    description=STREAM_DOC,
    responses={
        200: ResponseSpec(
            ChatCompletion, description="The answer (`text/event-stream` of chunks when streamed)"
        ),
        **openai_error_responses(PayloadTooLarge, ModelNotFound, RateLimited, QuotaExceeded, Overloaded),
    },
)
async def chat_completions(
    data: JSONBody[ChatCompletionRequest],
    completions: Completions,
    current_user: CurrentUser,
    client_ip: ClientIp,
) -> Response[Any]:
    caller = Caller(user=current_user, ip=client_ip)
    if not data.stream:
        async with completions.run(caller, data) as (prepared, completion):
            try:
                return Response(await collect(completion, prepared.model.id))
            except UpstreamError as error:
                raise Overloaded("The model stopped answering mid-way; retry.", retry_after_s=5) from error
    # The request is admitted and on a worker before the response starts, so that a refusal is still a
    # status code; the stream owns everything from here and releases it when it ends or the caller leaves.
    stack = contextlib.AsyncExitStack()
    prepared, completion = await stack.enter_async_context(completions.run(caller, data))
    include_usage = bool(data.stream_options and data.stream_options.include_usage)
    owned = OwnedStream(stack, sse(completion, prepared.model.id, include_usage=include_usage))
    return Stream(
        owned.lines(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def openai_router() -> Router:
    """The OpenAI-compatible routes, with the API-key security and OpenAI's error shape declared once."""
    return Router(
        path=OPENAI_PREFIX,
        security=API_KEY,
        tags=["OpenAI-compatible API"],
        exception_handlers=OPENAI_EXCEPTION_HANDLERS,
        route_handlers=[openai_models, chat_completions],
    )
