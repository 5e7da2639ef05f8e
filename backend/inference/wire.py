"""SGLang's chat API on the wire (SGLANG.md): the request Surge sends, and what a streamed response's chunks
say, decoded leniently (unknown fields are ignored)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec


class UpstreamError(Exception):
    """An SGLang worker failed a request.

    ``before_first_token`` tells the caller whether another worker may still be tried: once text has
    reached the user, a retry elsewhere would stream a different answer.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str = "upstream_error") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    @property
    def retryable(self) -> bool:
        """Worth trying another worker: the worker was unreachable, overloaded or broke (not our request)."""
        return self.status is None or self.status >= 500 or self.status in (408, 429)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    rid: str
    max_tokens: int
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    temperature: float | None = None
    # SGLang's scheduling priority (only read by servers with --enable-priority-scheduling).
    priority: int | None = None
    # Sampling options an OpenAI-compatible caller may set (conversation turns leave them to the server).
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None

    def payload(self, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages,
            "rid": self.rid,
            "max_tokens": self.max_tokens,
            "stream": stream,
            # Reasoning arrives apart from the answer (needs --reasoning-parser on the server).
            "separate_reasoning": True,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if self.chat_template_kwargs:
            body["chat_template_kwargs"] = self.chat_template_kwargs
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.priority is not None:
            body["priority"] = self.priority
        for name in ("top_p", "stop", "seed"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        return body


@dataclass(frozen=True, slots=True)
class Delta:
    """New text of one chunk: chain-of-thought and/or answer."""

    reasoning: str = ""
    content: str = ""


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str  # stop | length | abort


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int


StreamItem = Delta | Finish | Usage


# --- the wire format of SGLang's chunks, decoded leniently (unknown fields are ignored) ---
class _WireDelta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None


class _WireChoice(msgspec.Struct):
    delta: _WireDelta | None = None
    message: _WireDelta | None = None
    finish_reason: str | None = None


class _WirePromptDetails(msgspec.Struct):
    cached_tokens: int | None = 0


class _WireUsage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int | None = 0
    prompt_tokens_details: _WirePromptDetails | None = None


class _WireError(msgspec.Struct):
    message: str = "upstream error"
    code: int | str | None = None


class _WireChunk(msgspec.Struct):
    choices: list[_WireChoice] = msgspec.field(default_factory=list)
    usage: _WireUsage | None = None
    error: _WireError | None = None


decode_chunk = msgspec.json.Decoder(_WireChunk).decode


def usage_of(wire: _WireUsage) -> Usage:
    return Usage(
        prompt_tokens=wire.prompt_tokens,
        completion_tokens=wire.completion_tokens,
        reasoning_tokens=wire.reasoning_tokens or 0,
        cached_tokens=(wire.prompt_tokens_details.cached_tokens or 0) if wire.prompt_tokens_details else 0,
    )


def _error_status(error: _WireError) -> int | None:
    try:
        return int(error.code) if error.code is not None else None
    except ValueError:
        return None


def decode_items(data: bytes) -> list[StreamItem]:
    """What one chunk of SGLang's stream says: deltas, a finish reason, usage."""
    try:
        chunk = decode_chunk(data)
    except msgspec.DecodeError as exc:
        raise UpstreamError(f"undecodable chunk from worker: {exc}") from exc
    if chunk.error is not None:
        # SGLang reports failures after the stream began in-band (e.g. its queue is full).
        raise UpstreamError(chunk.error.message, status=_error_status(chunk.error))
    items: list[StreamItem] = []
    for choice in chunk.choices:
        delta = choice.delta
        if delta is not None and (delta.content or delta.reasoning_content):
            items.append(Delta(reasoning=delta.reasoning_content or "", content=delta.content or ""))
        if choice.finish_reason is not None:
            items.append(Finish(choice.finish_reason))
    if chunk.usage is not None and not chunk.choices:
        items.append(usage_of(chunk.usage))
    return items
