"""A ``Completion`` as OpenAI's answer: one ``chat.completion``, or ``chat.completion.chunk`` SSE lines
ending with ``data: [DONE]``."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import msgspec

from backend.inference.wire import Delta, UpstreamError
from backend.inference.wire import Usage as WireUsage
from backend.openai_api.completion import Completion
from backend.openai_api.errors import OpenAIError, OpenAIErrorEnvelope
from backend.openai_api.schemas import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    ChunkDelta,
    CompletionTokensDetails,
    OutputMessage,
    PromptTokensDetails,
    Usage,
)

logger = logging.getLogger("surge.openai")
_encode = msgspec.json.Encoder().encode
DONE = b"data: [DONE]\n\n"


def usage_of(usage: WireUsage | None, deltas: int) -> Usage:
    prompt = usage.prompt_tokens if usage else 0
    completion = usage.completion_tokens if usage else deltas
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=usage.cached_tokens if usage else 0),
        completion_tokens_details=CompletionTokensDetails(
            reasoning_tokens=usage.reasoning_tokens if usage else 0
        ),
    )


def finish_reason(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


async def collect(completion: Completion, model_id: str) -> ChatCompletion:
    """The whole answer, read to its end (a worker failing mid-way raises ``UpstreamError``)."""
    content: list[str] = []
    reasoning: list[str] = []
    async for item in completion.items():
        if isinstance(item, Delta):
            content.append(item.content)
            reasoning.append(item.reasoning)
    message = OutputMessage(
        role="assistant", content="".join(content), reasoning_content="".join(reasoning) or None
    )
    return ChatCompletion(
        id=completion.request.rid,
        created=int(time.time()),
        model=model_id,
        choices=[Choice(index=0, message=message, finish_reason=finish_reason(completion.finish_reason))],
        usage=usage_of(completion.usage, completion.deltas),
    )


class ChunkWriter:
    """Encodes the chunks of one streamed answer (same id, created and model on every one)."""

    def __init__(self, rid: str, model_id: str) -> None:
        self.rid, self.model_id, self.created = rid, model_id, int(time.time())

    def line(self, choices: list[ChunkChoice], usage: Usage | None = None) -> bytes:
        chunk = ChatCompletionChunk(
            id=self.rid, created=self.created, model=self.model_id, choices=choices, usage=usage
        )
        return b"data: " + _encode(chunk) + b"\n\n"

    def delta(self, delta: ChunkDelta, reason: str | None = None) -> bytes:
        return self.line([ChunkChoice(index=0, delta=delta, finish_reason=reason)])


async def sse(completion: Completion, model_id: str, *, include_usage: bool) -> AsyncIterator[bytes]:
    """The streamed answer: a first chunk with the role, one per delta, one with the finish reason, the
    usage chunk if asked for, ``[DONE]``. A worker failing mid-way ends it with an ``error`` line (what
    OpenAI's clients raise on) and no ``[DONE]``."""
    writer = ChunkWriter(completion.request.rid, model_id)
    yield writer.delta(ChunkDelta(role="assistant", content=""))
    try:
        async for item in completion.items():
            if isinstance(item, Delta):
                yield writer.delta(
                    ChunkDelta(content=item.content or None, reasoning_content=item.reasoning or None)
                )
            else:
                yield writer.delta(ChunkDelta(), finish_reason(item.reason))
    except UpstreamError as error:
        logger.warning(
            "worker failed mid-answer", extra={"worker": completion.worker, "error": error.message[:200]}
        )
        failure = OpenAIError(
            message="The model stopped answering mid-way.",
            type="server_error",
            code="upstream_error",
            param=None,
        )
        yield b"data: " + _encode(OpenAIErrorEnvelope(error=failure)) + b"\n\n"
        return
    if include_usage:
        yield writer.line([], usage_of(completion.usage, completion.deltas))
    yield DONE
