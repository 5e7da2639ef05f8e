"""An HTTP client for SGLang's OpenAI-compatible chat API, streamed, with abort (SGLANG.md).

It uses aiohttp rather than httpx, the project's usual client: SGLang streams one chunk per token, and
profiling the gateway showed httpx's pure-Python HTTP/1.1 parsing (h11) and per-read timeout scopes
taking close to half of Surge's CPU per relayed token; aiohttp parses with llhttp in C.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

logger = logging.getLogger("surge.inference")


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


_decode_chunk = msgspec.json.Decoder(_WireChunk).decode


def _usage(wire: _WireUsage) -> Usage:
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


class SGLangClient:
    """Talks to SGLang workers (or an sglang-router) over one pooled aiohttp session."""

    def __init__(self, *, connect_timeout_s: float = 5.0) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Created on first use, inside the running event loop (aiohttp binds to it).
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
                # Waits between chunks are the turn runner's business (first-token and token-gap timeouts).
                timeout=aiohttp.ClientTimeout(total=None, connect=self._connect_timeout_s, sock_read=None),
                json_serialize=lambda value: msgspec.json.encode(value).decode(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def stream_chat(self, worker: str, request: ChatRequest) -> AsyncGenerator[StreamItem, None]:
        """Yield deltas, then the finish reason, then usage; raise UpstreamError on any failure."""
        try:
            async with self.session.post(
                f"{worker}/v1/chat/completions",
                data=msgspec.json.encode(request.payload(stream=True)),
                headers={"Content-Type": "application/json"},
            ) as response:
                if response.status != 200:
                    body = (await response.read()).decode(errors="replace")[:500]
                    raise UpstreamError(
                        f"worker answered {response.status}: {body}",
                        status=response.status,
                        code="context_too_long" if response.status == 400 else "upstream_error",
                    )
                async for raw in response.content:
                    if not raw.startswith(b"data:"):
                        continue
                    data = raw[5:].strip()
                    if data == b"[DONE]":
                        return
                    try:
                        chunk = _decode_chunk(data)
                    except msgspec.DecodeError as exc:
                        raise UpstreamError(f"undecodable chunk from worker: {exc}") from exc
                    if chunk.error is not None:
                        # SGLang reports failures after the stream began in-band (e.g. its queue is full).
                        raise UpstreamError(chunk.error.message, status=_error_status(chunk.error))
                    for choice in chunk.choices:
                        delta = choice.delta
                        if delta is not None and (delta.content or delta.reasoning_content):
                            yield Delta(reasoning=delta.reasoning_content or "", content=delta.content or "")
                        if choice.finish_reason is not None:
                            yield Finish(choice.finish_reason)
                    if chunk.usage is not None and not chunk.choices:
                        yield _usage(chunk.usage)
        except TimeoutError as exc:
            raise UpstreamError("worker timed out") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"worker unreachable or connection lost: {type(exc).__name__}") from exc

    async def complete_chat(self, worker: str, request: ChatRequest) -> tuple[str, Usage | None]:
        """A short non-streamed completion (conversation titles): the answer text and usage."""
        try:
            async with self.session.post(
                f"{worker}/v1/chat/completions",
                data=msgspec.json.encode(request.payload(stream=False)),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=60),
            ) as response:
                if response.status != 200:
                    raise UpstreamError(f"worker answered {response.status}", status=response.status)
                chunk = _decode_chunk(await response.read())
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamError(f"worker unreachable: {type(exc).__name__}") from exc
        text = ""
        if chunk.choices and chunk.choices[0].message is not None:
            text = chunk.choices[0].message.content or ""
        return text, _usage(chunk.usage) if chunk.usage else None

    async def abort(self, worker: str, rid: str) -> None:
        """Ask the worker to stop ``rid`` (an sglang-router has no such route: closing the stream does it)."""
        try:
            async with self.session.post(
                f"{worker}/abort_request", json={"rid": rid}, timeout=aiohttp.ClientTimeout(total=2)
            ) as response:
                await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            logger.info("abort_request failed", extra={"worker": worker, "error": type(exc).__name__})

    # --- what the health monitor asks ---
    async def healthy(self, worker: str, timeout_s: float) -> bool:
        try:
            async with self.session.get(
                f"{worker}/health", timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                await response.read()
                return response.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def get_json(self, worker: str, path: str, timeout_s: float) -> Any:
        """A GET of SGLang's JSON endpoints (/server_info, /get_load); None when it fails."""
        try:
            async with self.session.get(
                f"{worker}{path}", timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                if response.status != 200:
                    return None
                return msgspec.json.decode(await response.read())
        except (TimeoutError, aiohttp.ClientError, msgspec.DecodeError):
            return None

    async def get_text(self, worker: str, path: str, timeout_s: float) -> str | None:
        try:
            async with self.session.get(
                f"{worker}{path}", timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                return (await response.text()) if response.status == 200 else None
        except (TimeoutError, aiohttp.ClientError):
            return None
