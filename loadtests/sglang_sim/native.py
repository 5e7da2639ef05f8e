"""POST /generate, SGLang's native API: cumulative `text`, `output_ids` and `meta_info`."""

from __future__ import annotations

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
from loadtests.sglang_sim.protocol import GenerateRequest, SamplingParams, error_body
from loadtests.sglang_sim.scheduler import QueueFullError, Request
from loadtests.sglang_sim.server import SimServer

_decoder = msgspec.json.Decoder(GenerateRequest)


async def handle_generate(server: SimServer, body: bytes, receive: Receive, send: Send) -> None:
    """Serve one native generation."""
    try:
        request = _decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        await send_json(send, 400, error_body(str(e), "Bad Request", 400))
        return
    if request.text is None and request.input_ids is None:
        await send_json(send, 400, {"error": {"message": "Either text or input_ids should be provided."}})
        return
    params = request.sampling_params or SamplingParams()
    prompt_ids = (
        list(request.input_ids) if request.input_ids is not None else server.tok.encode(request.text or "")
    )
    try:
        req = server.make_request(
            prompt_ids=prompt_ids,
            thinking=server.template.prompt_thinks(prompt_ids),
            max_new_tokens=params.max_new_tokens,
            stop=params.stop,
            ignore_eos=params.ignore_eos,
            rid=request.rid,
            priority=request.priority,
        )
    except ValueError as e:
        if request.stream:  # SGLang's /generate stream has started: the error is a data line
            out = EventStream(send)
            await out.write(sse({"error": {"message": str(e)}}) + SSE_DONE, last=True)
        else:
            await send_json(send, 400, {"error": {"message": str(e)}})
        return
    if request.stream:
        await _stream(server, req, receive, send)
    else:
        await _complete(server, req, receive, send)


def _body(server: SimServer, req: Request, text: str, output_ids: list[int]) -> dict[str, Any]:
    return {
        "text": text,
        "output_ids": output_ids,
        "meta_info": server.meta_info(req, min(req.num_output, len(req.plan.tokens))),
    }


def _queue_full_body(server: SimServer, req: Request, message: str) -> dict[str, Any]:
    req.finish_reason = {"type": "abort", "status_code": 503, "message": message}
    return _body(server, req, "", [])


async def _complete(server: SimServer, req: Request, receive: Receive, send: Send) -> None:
    if not await server.run_to_end(req, receive, send):
        return
    n = min(req.num_output, len(req.plan.tokens))
    await send_json(send, 200, _body(server, req, req.plan.text(server.tok, 0, n), req.plan.tokens[:n]))


async def _stream(server: SimServer, req: Request, receive: Receive, send: Send) -> None:
    out = EventStream(send)
    try:
        server.submit(req)
    except QueueFullError as e:
        await out.write(sse(_queue_full_body(server, req, str(e))) + SSE_DONE, last=True)
        return
    # SGLang's /generate returns its StreamingResponse at once: headers before the first token.
    await out.write(b"")
    die_after = server.faults.die_after()
    watch = DisconnectWatch(receive, req.event.set)
    sent, text = 0, ""
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
            if n == sent and not req.finished:
                continue
            text += req.plan.text(server.tok, sent, n)
            chunk = sse(_body(server, req, text, req.plan.tokens[sent:n]))
            sent = n
            if dying:
                await out.write(chunk)
                server.scheduler.abort(req.rid, "The connection was dropped (simulated fault).")
                raise DroppedConnection(f"simulated fault: stream {req.rid} dropped after {sent} tokens")
            if req.finished:
                await out.write(chunk + SSE_DONE, last=True)
                return
            if not await out.write(chunk):
                return
    finally:
        watch.close()
        if not req.finished:
            server.abort_later(req.rid)
