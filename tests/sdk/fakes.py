"""A scripted stand-in for Surge behind ``httpx.MockTransport``, for the edge cases a live server will not
produce on demand: responses cut at any byte, 429s and 503s, racing refreshes."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

CONVERSATION_ID = "c0nversation-1"
USER_MESSAGE_ID = "user-message-1"
ASSISTANT_MESSAGE_ID = "assistant-message-1"
NOW = "2025-01-27T09:00:00Z"

REASONING = ["The user ", "greets me; ", "answer briefly."]
CONTENT = ["Hello", ", wörld ", "— ", "how can I help? 🌍"]


def message(
    message_id: str = ASSISTANT_MESSAGE_ID,
    *,
    role: str = "assistant",
    content: str = "",
    reasoning: str | None = None,
    status: str = "queued",
    parent_id: str | None = USER_MESSAGE_ID,
    **overrides: Any,
) -> dict[str, Any]:
    body = {
        "id": message_id,
        "conversation_id": CONVERSATION_ID,
        "parent_id": parent_id,
        "role": role,
        "content": content,
        "reasoning": reasoning,
        "status": status,
        "model": "deepseek-r1" if role == "assistant" else None,
        "finish_reason": None,
        "error": None,
        "usage": None,
        "feedback": None,
        "created_at": NOW,
        "completed_at": None,
    }
    body.update(overrides)
    return body


def turn(assistant_id: str = ASSISTANT_MESSAGE_ID, user_id: str = USER_MESSAGE_ID) -> dict[str, Any]:
    return {
        "user_message": message(user_id, role="user", content="Hi!", status="complete", parent_id=None),
        "assistant_message": message(assistant_id, parent_id=user_id),
    }


def final_message(status: str = "complete") -> dict[str, Any]:
    return message(
        content="".join(CONTENT),
        reasoning="".join(REASONING),
        status=status,
        finish_reason="stop" if status == "complete" else status,
        usage={"prompt_tokens": 12, "completion_tokens": 9, "reasoning_tokens": 5, "cached_tokens": 8},
        completed_at=NOW,
    )


def turn_events(*, terminal: str = "done") -> list[tuple[str, dict[str, Any]]]:
    """The logged events of one answer, seq 1, 2, 3, ... in order."""
    events: list[tuple[str, dict[str, Any]]] = [
        ("queued", {"position": 2, "estimated_wait_s": 1.5}),
        ("queued", {"position": 1, "estimated_wait_s": 0.5}),
        ("started", {"model": "deepseek-r1"}),
    ]
    events += [("reasoning", {"delta": delta}) for delta in REASONING]
    events.append(("degraded", {"reason": "overload", "changes": {"max_tokens": 1024}}))
    events += [("content", {"delta": delta}) for delta in CONTENT]
    if terminal == "done":
        events.append(("done", {"message": final_message()}))
    else:
        events.append(
            ("error", {"code": "upstream_unavailable", "message": "The worker died.", "retry_after_s": 3})
        )
    return events


def sse(name: str, data: dict[str, Any], seq: int | None) -> bytes:
    lines = [f"id: {seq}"] if seq is not None else []
    lines += [f"event: {name}", f"data: {json.dumps(data, ensure_ascii=False)}"]
    return ("\n".join(lines) + "\n\n").encode()


def event_stream_body(events: list[tuple[str, dict[str, Any]]], *, after: int, with_turn: bool) -> bytes:
    """An SSE body: optionally the ``turn`` event, then the events after ``after``, with pings between."""
    parts = [sse("turn", turn(), None)] if with_turn else []
    for seq, (name, data) in enumerate(events, start=1):
        if seq > after:
            parts.append(sse(name, data, seq))
            if seq % 3 == 0:
                parts.append(b": ping\n\n")
    return b"".join(parts)


class CutStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that breaks after ``cut`` bytes: with a read error (a dropped connection), or with
    a clean end of stream (a proxy that closed it)."""

    def __init__(
        self, body: bytes, cut: int | None, *, clean: bool = False, on_close: Callable[[], None]
    ) -> None:
        self.body = body
        self.cut = cut
        self.clean = clean
        self.on_close = on_close

    def _chunks(self) -> list[bytes]:
        body = self.body if self.cut is None else self.body[: self.cut]
        return [body[i : i + 7] for i in range(0, len(body), 7)]

    def _end(self) -> None:
        if self.cut is not None and not self.clean:
            raise httpx.ReadError("connection reset by peer")

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks()
        self._end()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks():
            yield chunk
        self._end()

    def close(self) -> None:
        self.on_close()

    async def aclose(self) -> None:
        self.on_close()


@dataclass
class FakeTurns:
    """Turn routes that create one turn per idempotency key and stream its events, cutting the n-th
    connection's body at ``cuts[n]`` bytes (``None``: not cut)."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=turn_events)
    cuts: list[int | None] = field(default_factory=list)
    clean_cuts: bool = False
    turns_by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    opened: int = 0
    closed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _cut(self) -> int | None:
        index = self.opened
        self.opened += 1
        return self.cuts[index] if index < len(self.cuts) else None

    def _closed(self) -> None:
        with self.lock:
            self.closed += 1

    def stream_response(self, body: bytes) -> httpx.Response:
        stream = CutStream(body, self._cut(), clean=self.clean_cuts, on_close=self._closed)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "POST" and path == f"/v1/conversations/{CONVERSATION_ID}/messages":
            key = request.headers.get("idempotency-key", "")
            self.turns_by_key.setdefault(key, turn())
            body = json.loads(request.content)
            if not body.get("stream"):
                return httpx.Response(202, json=self.turns_by_key[key])
            return self.stream_response(event_stream_body(self.events, after=0, with_turn=True))
        if request.method == "GET" and path == f"/v1/messages/{ASSISTANT_MESSAGE_ID}/events":
            after = int(request.url.params.get("after", "0"))
            return self.stream_response(event_stream_body(self.events, after=after, with_turn=False))
        if request.method == "POST" and path == f"/v1/messages/{ASSISTANT_MESSAGE_ID}/cancel":
            return httpx.Response(200, json=message(status="cancelled"))
        return httpx.Response(
            404, json={"error": {"code": "not_found", "message": "Not found.", "request_id": "r"}}
        )

    @property
    def connections(self) -> list[httpx.Request]:
        return [request for request in self.requests if request.url.path.endswith(("/messages", "/events"))]


def error_body(code: str, message: str = "Nope.", **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "request_id": f"req-{code}", **extra}}


def session_body(access_token: str, refresh_token: str, expires_in: int = 900) -> dict[str, Any]:
    return {
        "user": {
            "id": "user-1",
            "email": "ada@example.com",
            "display_name": None,
            "tier": "free",
            "created_at": NOW,
        },
        "access_token": access_token,
        "refresh_token": refresh_token,
        "token_type": "bearer",
        "expires_in": expires_in,
    }


USER = session_body("a", "r")["user"]
