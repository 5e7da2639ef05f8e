"""The ASGI application: SGLang's routes (new and deprecated names) plus the simulator's /sim/* admin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from loadtests.sglang_sim.asgi import Receive, Scope, Send, read_body, send_bytes, send_json, send_text
from loadtests.sglang_sim.chat import handle_chat
from loadtests.sglang_sim.config import SimConfig
from loadtests.sglang_sim.metrics import render
from loadtests.sglang_sim.native import handle_generate
from loadtests.sglang_sim.protocol import AbortRequest, error_body
from loadtests.sglang_sim.server import SimServer

Handler = Callable[[SimServer, Scope, Receive, Send], Awaitable[None]]

_FLUSH_TEXT = (
    "Cache flushed.\nPlease check backend logs for more details. "
    "(When there are running or waiting requests, the operation will not be performed.)\n"
)


async def _health(server: SimServer, scope: Scope, receive: Receive, send: Send) -> None:
    await send_text(send, 200 if server.healthy else 503, "")


async def _model_info(server: SimServer, scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, server.model_info())


async def _server_info(server: SimServer, scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, server.server_info())


async def _get_load(server: SimServer, scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, [server.scheduler.load()])


async def _models(server: SimServer, scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, {"object": "list", "data": [_model_card(server)]})


def _model_card(server: SimServer) -> dict[str, object]:
    name = server.config.model_name
    return {
        "id": name,
        "object": "model",
        "created": server.created,
        "owned_by": "sglang",
        "root": name,
        "parent": None,
        "max_model_len": server.config.context_length,
    }


async def _generate(server: SimServer, scope: Scope, receive: Receive, send: Send) -> None:
    await handle_generate(server, await read_body(receive), receive, send)


async def _chat(server: SimServer, scope: Scope, receive: Receive, send: Send) -> None:
    content_type = dict(scope.get("headers", [])).get(b"content-type", b"").split(b";")[0].strip().lower()
    body = await read_body(receive)
    if content_type != b"application/json":
        message = "Unsupported Media Type: Only 'application/json' is allowed"
        await send_json(send, 400, error_body(message, "Bad Request", 400))
        return
    await handle_chat(server, body, receive, send)


async def _abort(server: SimServer, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        request = msgspec.json.decode(await read_body(receive) or b"{}", type=AbortRequest)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        await send_json(send, 400, error_body(str(e), "Bad Request", 400))
        return
    if request.abort_all:
        server.scheduler.abort_all()
    elif request.rid:
        server.scheduler.abort(request.rid)
    await send_text(send, 200, "")


async def _flush(server: SimServer, scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    await send_text(send, 200 if server.scheduler.flush_cache() else 400, _FLUSH_TEXT)


async def _metrics(server: SimServer, scope: Scope, receive: Receive, send: Send) -> None:
    if not server.config.enable_metrics:
        await send_json(send, 404, {"detail": "Not Found"})
        return
    await send_bytes(send, 200, render(server.registry), b"text/plain; version=0.0.4; charset=utf-8")


async def _faults(server: SimServer, scope: Scope, receive: Receive, send: Send) -> None:
    method = scope["method"]
    if method in ("POST", "PUT"):
        try:
            changes = msgspec.json.decode(await read_body(receive) or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object of faults")
            server.faults.update(changes)
        except (ValueError, msgspec.DecodeError) as e:
            await send_json(send, 400, error_body(str(e), "Bad Request", 400))
            return
    elif method == "DELETE":
        server.faults.reset()
    await send_json(send, 200, server.faults.to_dict())


async def _stats(server: SimServer, scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, server.scheduler.snapshot())


# path -> (allowed methods, handler). Deprecated SGLang names map to the same handlers.
ROUTES: dict[str, tuple[frozenset[str], Handler]] = {
    "/health": (frozenset({"GET"}), _health),
    "/health_generate": (frozenset({"GET"}), _health),
    "/model_info": (frozenset({"GET"}), _model_info),
    "/get_model_info": (frozenset({"GET"}), _model_info),
    "/server_info": (frozenset({"GET"}), _server_info),
    "/get_server_info": (frozenset({"GET"}), _server_info),
    "/get_load": (frozenset({"GET"}), _get_load),
    "/generate": (frozenset({"POST", "PUT"}), _generate),
    "/v1/chat/completions": (frozenset({"POST"}), _chat),
    "/v1/models": (frozenset({"GET"}), _models),
    "/abort_request": (frozenset({"POST"}), _abort),
    "/flush_cache": (frozenset({"GET", "POST"}), _flush),
    "/metrics": (frozenset({"GET"}), _metrics),
    "/sim/faults": (frozenset({"GET", "POST", "PUT", "DELETE"}), _faults),
    "/sim/stats": (frozenset({"GET"}), _stats),
}


class SimApp:
    """ASGI callable serving one SimServer. The scheduler starts at lifespan start-up or first request."""

    def __init__(self, config: SimConfig) -> None:
        self.server = SimServer(config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self.server.ensure_started()
        path = scope["path"].rstrip("/") or "/"
        route = ROUTES.get(path)
        if route is None and path.startswith("/v1/models/"):
            await self._model(path.removeprefix("/v1/models/"), send)
            return
        if route is None:
            await send_json(send, 404, {"detail": "Not Found"})
            return
        methods, handler = route
        if scope["method"] not in methods:
            await send_json(send, 405, {"detail": "Method Not Allowed"})
            return
        await handler(self.server, scope, receive, send)

    async def _model(self, model: str, send: Send) -> None:
        if model != self.server.config.model_name:
            error = {
                "message": f"The model '{model}' does not exist",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            }
            await send_json(send, 404, {"error": error})
            return
        await send_json(send, 200, _model_card(self.server))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.server.ensure_started()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.server.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_app(config: SimConfig | None = None) -> SimApp:
    """The ASGI app of one simulated SGLang worker (`app.server` is its state, for tests)."""
    return SimApp(config or SimConfig())
