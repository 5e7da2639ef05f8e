"""An HTTP client for SGLang workers (SGLANG.md): streamed chat, short completions, abort, and what the
health monitor asks.

Streams go over connections of Surge's own (``backend.inference.upstream``): SGLang sends one chunk per
token, and a client library wakes a coroutine per chunk. Everything else is occasional and uses aiohttp
(rather than httpx, the project's usual client: aiohttp parses with llhttp in C, and the two share nothing
a streamed token would pay for).
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import msgspec

from backend.inference.upstream import StreamSink, UpstreamStreams
from backend.inference.wire import ChatRequest, UpstreamError, Usage, decode_chunk, usage_of

# What the rest of Surge imports from here.
__all__ = ["ChatRequest", "SGLangClient", "StreamSink", "UpstreamError"]

logger = logging.getLogger("surge.inference")


class SGLangClient:
    """Talks to SGLang workers (or an sglang-router) over one pooled aiohttp session."""

    def __init__(self, *, connect_timeout_s: float = 5.0) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._streams = UpstreamStreams(connect_timeout_s=connect_timeout_s)

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
        await self._streams.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def stream_chat(self, worker: str, request: ChatRequest, sink: StreamSink) -> None:
        """Stream ``request`` into ``sink`` (deltas, the finish reason, usage) until the end; raise
        ``UpstreamError`` on any failure. See ``backend.inference.upstream``."""
        await self._streams.stream_chat(worker, request, sink)

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
                chunk = decode_chunk(await response.read())
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamError(f"worker unreachable: {type(exc).__name__}") from exc
        text = ""
        if chunk.choices and chunk.choices[0].message is not None:
            text = chunk.choices[0].message.content or ""
        return text, usage_of(chunk.usage) if chunk.usage else None

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
