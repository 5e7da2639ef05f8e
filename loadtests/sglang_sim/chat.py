"""POST /v1/chat/completions, streamed and not, shaped like SGLang's serving_chat.py."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from loadtests.sglang_sim.asgi import (
    SSE_DONE,
    DisconnectWatch,
    DroppedConnection,
    EventStream,
    Receive,
    Send,
    send_json,
    sse,
)
from loadtests.sglang_sim.protocol import (
    ChatCompletionRequest,
    StreamChoice,
    StreamChunk,
    StreamDelta,
    error_body,
    usage_body,
)
from loadtests.sglang_sim.scheduler import QueueFullError, Request
from loadtests.sglang_sim.server import SimServer

_decoder = msgspec.json.Decoder(ChatCompletionRequest)


def _validation_error(message: str) -> dict[str, Any]:
    return error_body(message, "Bad Request", 400)


async def handle_chat(server: SimServer, body: bytes, receive: Receive, send: Send) -> None:
    """Serve one chat completion."""
    try:
        request = _decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        await send_json(send, 400, _validation_error(str(e)))
        return
    if not request.messages:
        await send_json(send, 400, error_body("Messages cannot be empty.", "BadRequestError", 400))
        return
    messages = [msgspec.structs.asdict(m) for m in request.messages]
    thinking = server.template.thinking_enabled(request.chat_template_kwargs)
    prompt_ids = server.template.render(messages, thinking)
    try:
        req = server.make_request(
            prompt_ids=prompt_ids,
            thinking=thinking,
            max_new_tokens=request.max_completion_tokens or request.max_tokens,
            stop=request.stop,
            ignore_eos=request.ignore_eos,
            rid=request.rid,
            priority=request.priority,
        )
    except ValueError as e:
        await send_json(send, 400, error_body(str(e), "BadRequestError", 400))
        return
    separate = server.config.reasoning_parser is not None and request.separate_reasoning
    if request.stream:
        await _stream(server, request, req, separate, receive, send)
    else:
        await _complete(server, request, req, separate, receive, send)


def _usage(server: SimServer, req: Request, separate: bool) -> dict[str, Any]:
    completion = min(req.num_output, len(req.plan.tokens))
    reasoning = (
        min(req.plan.reasoning_tokens, max(0, completion - req.plan.reasoning_start)) if separate else 0
    )
    return usage_body(
        len(req.prompt_ids), completion, reasoning, req.cached_tokens, server.config.enable_cache_report
    )


async def _complete(
    server: SimServer,
    request: ChatCompletionRequest,
    req: Request,
    separate: bool,
    receive: Receive,
    send: Send,
) -> None:
    if not await server.run_to_end(req, receive, send):
        return
    n = min(req.num_output, len(req.plan.tokens))
    if separate:
        reasoning, content = req.plan.split_text(server.tok, 0, n)
    else:
        reasoning, content = "", req.plan.text(server.tok, 0, n)
    reason = req.finish_reason or {}
    await send_json(
        send,
        200,
        {
            "id": req.rid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "reasoning_content": reasoning or None,
                        "tool_calls": None,
                    },
                    "logprobs": None,
                    "finish_reason": reason.get("type"),
                    "matched_stop": reason.get("matched"),
                }
            ],
            "usage": _usage(server, req, separate),
            "metadata": {"weight_version": "default"},
        },
    )


def _chunk(
    req: Request, model: str, delta: StreamDelta, finish: str | None = None, matched: Any = None
) -> bytes:
    choice = StreamChoice(index=0, delta=delta, finish_reason=finish, matched_stop=matched)
    return sse(StreamChunk(req.rid, "chat.completion.chunk", int(time.time()), model, [choice]))


def _usage_chunk(server: SimServer, req: Request, model: str, separate: bool) -> bytes:
    return sse(
        {
            "id": req.rid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [],
            "usage": _usage(server, req, separate),
        }
    )


async def _stream(
    server: SimServer,
    request: ChatCompletionRequest,
    req: Request,
    separate: bool,
    receive: Receive,
    send: Send,
) -> None:
    out = EventStream(send)
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    model = request.model
    try:
        server.submit(req)
    except QueueFullError as e:
        # SGLang answers 200 and reports the scheduler's 503 abort in-band.
        error = {"error": error_body(str(e), "SERVICE_UNAVAILABLE", 503)}
        tail = _usage_chunk(server, req, model, separate) if include_usage else b""
        await out.write(sse(error) + tail + SSE_DONE, last=True)
        return
    die_after = server.faults.die_after()
    watch = DisconnectWatch(receive, req.event.set)
    sent = 0
    try:
        while True:
            await req.event.wait()
            req.event.clear()
            if watch.disconnected or out.broken:
                return
            n = min(req.num_output, len(req.plan.tokens))
            dying = False
            if die_after is not None and n >= die_after and not (req.finished and n <= die_after):
                n, dying = die_after, True
            parts: list[bytes] = []
            if not out.started:
                parts.append(_chunk(req, model, StreamDelta(role="assistant", content="")))
            if n > sent:
                if separate:
                    reasoning, content = req.plan.split_text(server.tok, sent, n)
                    if reasoning:
                        parts.append(_chunk(req, model, StreamDelta(reasoning_content=reasoning)))
                    if content:
                        parts.append(_chunk(req, model, StreamDelta(content=content)))
                else:
                    text = req.plan.text(server.tok, sent, n)
                    if text:
                        parts.append(_chunk(req, model, StreamDelta(content=text)))
                sent = n
            if dying:
                await out.write(b"".join(parts))
                server.scheduler.abort(req.rid, "The connection was dropped (simulated fault).")
                raise DroppedConnection(f"simulated fault: stream {req.rid} dropped after {sent} tokens")
            if parts and not req.finished and not await out.write(b"".join(parts)):
                return
            if req.finished:
                reason = req.finish_reason or {}
                parts.append(_chunk(req, model, StreamDelta(), reason.get("type"), reason.get("matched")))
                if include_usage:
                    parts.append(_usage_chunk(server, req, model, separate))
                parts.append(SSE_DONE)
                await out.write(b"".join(parts), last=True)
                return
    finally:
        watch.close()
        if not req.finished:  # the client left (or the stream broke): abort a little later, as SGLang does
            server.abort_later(req.rid)
