"""Request and response shapes of SGLang's HTTP API (native and OpenAI-compatible), as msgspec Structs."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Role = Literal["system", "user", "assistant", "tool", "function", "developer"]


class ChatMessage(msgspec.Struct, kw_only=True):
    """One message of a chat request."""

    role: Role
    content: str | list[dict[str, Any]] | None = None
    reasoning_content: str | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(msgspec.Struct, kw_only=True):
    """`stream_options` of a chat request."""

    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False


class ChatCompletionRequest(msgspec.Struct, kw_only=True):
    """POST /v1/chat/completions body (SGLang's extras included; unknown fields are ignored)."""

    messages: list[ChatMessage]
    model: str = "default"
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int = 1
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    ignore_eos: bool = False
    min_tokens: int = 0
    rid: str | None = None
    separate_reasoning: bool = True
    stream_reasoning: bool = True
    chat_template_kwargs: dict[str, Any] | None = None
    reasoning_effort: str | float | None = None
    priority: int | None = None
    extra_key: str | None = None
    cache_salt: str | None = None
    logprobs: bool = False
    user: str | None = None


class SamplingParams(msgspec.Struct, kw_only=True):
    """`sampling_params` of a native /generate request (SGLang's defaults)."""

    max_new_tokens: int | None = 128
    min_new_tokens: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    skip_special_tokens: bool = True
    n: int = 1


class GenerateRequest(msgspec.Struct, kw_only=True):
    """POST /generate body (single prompt only)."""

    text: str | None = None
    input_ids: list[int] | None = None
    sampling_params: SamplingParams | None = None
    stream: bool = False
    rid: str | None = None
    priority: int | None = None
    return_logprob: bool = False


class AbortRequest(msgspec.Struct, kw_only=True):
    """POST /abort_request body."""

    rid: str = ""
    abort_all: bool = False


# --- streamed chat chunks: the same shapes as SGLang's sse_utils (None fields of the delta omitted) ---


class StreamDelta(msgspec.Struct, omit_defaults=True):
    """`delta` of a streamed chat chunk."""

    reasoning_content: str | None = None
    role: str | None = None
    content: str | None = None


class StreamChoice(msgspec.Struct):
    """One choice of a streamed chat chunk."""

    index: int
    delta: StreamDelta
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None
    matched_stop: int | str | None = None


class StreamChunk(msgspec.Struct, omit_defaults=True):
    """A streamed chat chunk (`usage` only on the last one)."""

    id: str
    object: str
    created: int
    model: str
    choices: list[StreamChoice]
    usage: dict[str, Any] | None = None


def error_body(message: str, err_type: str, code: int, param: str | None = None) -> dict[str, Any]:
    """SGLang's ErrorResponse: `{"object": "error", "message", "type", "param", "code"}`."""
    return {"object": "error", "message": message, "type": err_type, "param": param, "code": code}


def usage_body(
    prompt_tokens: int, completion_tokens: int, reasoning_tokens: int, cached_tokens: int, cache_report: bool
) -> dict[str, Any]:
    """SGLang's UsageInfo; prompt_tokens_details only with --enable-cache-report and a hit."""
    details = {"cached_tokens": cached_tokens} if cache_report and cached_tokens > 0 else None
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": details,
        "reasoning_tokens": reasoning_tokens,
    }
