"""OpenAI's Chat Completions request and responses, as far as Surge serves them (API.md). Unknown request
fields are ignored, as OpenAI-compatible servers do: clients send fields of their own (``user``, ...)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

THINKING_DOC = (
    "Thinking (reasoning) for models whose `thinking` is `optional` (`GET /v1/models`): "
    '`{"thinking": true}` turns it on, and the model\'s own switch name (e.g. `enable_thinking`) is read '
    "too; off when absent. Models that always or never think ignore it. Reasoning comes back in "
    "`reasoning_content`."
)


class TextPart(msgspec.Struct):
    type: Literal["text"]
    text: str


class InputMessage(msgspec.Struct):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: Annotated[list[InputMessage], Meta(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    max_completion_tokens: (
        Annotated[int, Meta(ge=1, description="Capped at the model's max_output_tokens")] | None
    ) = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(gt=0, le=1)] | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    seed: int | None = None
    n: Annotated[int, Meta(description="Only 1 is served")] | None = None
    chat_template_kwargs: Annotated[dict[str, Any], Meta(description=THINKING_DOC)] | None = None


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails


class PromptTokensDetails(msgspec.Struct):
    cached_tokens: int


class CompletionTokensDetails(msgspec.Struct):
    reasoning_tokens: int


class OutputMessage(msgspec.Struct):
    role: Literal["assistant"]
    content: str
    reasoning_content: str | None


class Choice(msgspec.Struct):
    index: int
    message: OutputMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    object: Literal["chat.completion"] = "chat.completion"


class ChunkDelta(msgspec.Struct, omit_defaults=True):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None


class ChunkChoice(msgspec.Struct):
    index: int
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(msgspec.Struct):
    """One ``data:`` line of a streamed answer; ``usage`` is set only on the last chunk (empty ``choices``)
    when ``stream_options.include_usage`` asked for it."""

    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"


class ModelCard(msgspec.Struct):
    id: str
    created: int
    owned_by: str
    object: Literal["model"] = "model"


class ModelCardList(msgspec.Struct):
    data: list[ModelCard]
    object: Literal["list"] = "list"
