"""A stand-in for Surge's ``/v1/ws`` (API.md, "WebSocket") on a real socket, with faults on demand:
drop the connection after so many frames, or close it with 4401 as an expired token does."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from tests.sdk.fakes import turn, turn_events


@dataclass
class Fault:
    """What to do to the connection after it has sent ``after_frames`` frames."""

    after_frames: int
    close_code: int | None = None  # None: drop the TCP connection without a close frame


@dataclass
class FakeRealtime:
    valid_tokens: set[str] = field(default_factory=lambda: {"access-1"})
    faults: list[Fault] = field(default_factory=list)
    """One per connection, in order; connections after the list runs out are left alone."""
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=turn_events)
    received: list[dict[str, Any]] = field(default_factory=list)
    auth_tokens: list[str] = field(default_factory=list)
    turns_by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    connections: int = 0
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _server: Server | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeRealtime:
        started = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            async with serve(self._handle, "127.0.0.1", 0) as server:
                self._server = server
                self.port = server.sockets[0].getsockname()[1]
                started.set()
                await server.wait_closed()

        def run() -> None:
            asyncio.run(main())

        self._thread = threading.Thread(target=run, name="fake-realtime", daemon=True)
        self._thread.start()
        started.wait(5)
        return self

    def stop(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(5)

    async def _handle(self, ws: ServerConnection) -> None:
        index = self.connections
        self.connections += 1
        fault = self.faults[index] if index < len(self.faults) else None
        sent = 0

        async def send(frame: dict[str, Any]) -> bool:
            """Send a frame unless the fault strikes first; False once the connection is gone."""
            nonlocal sent
            if fault is not None and sent >= fault.after_frames:
                if fault.close_code is None:
                    ws.transport.abort()
                else:
                    await ws.close(fault.close_code, "token expired")
                return False
            await ws.send(json.dumps(frame))
            sent += 1
            return True

        auth = json.loads(await ws.recv())
        self.auth_tokens.append(auth.get("access_token"))
        if auth.get("type") != "auth" or auth.get("access_token") not in self.valid_tokens:
            await ws.close(4401, "unauthorized")
            return
        async for raw in ws:
            try:
                frame = json.loads(raw)
            except ValueError:
                frame = {"type": "not json"}
            self.received.append(frame)
            kind = frame.get("type")
            if kind == "auth":  # a fresh token on an open socket
                self.auth_tokens.append(frame.get("access_token"))
                alive = True
                if frame.get("access_token") not in self.valid_tokens:
                    alive = await send(
                        {
                            "type": "error",
                            "data": {"code": "unauthorized", "message": "Invalid access token."},
                        }
                    )
            elif kind == "ping":
                alive = await send({"type": "pong"})
            elif kind == "send":
                key = frame["idempotency_key"]
                created = self.turns_by_key.setdefault(
                    key, turn(assistant_id=f"assistant-{len(self.turns_by_key) + 1}")
                )
                message_id = created["assistant_message"]["id"]
                alive = await send(
                    {"type": "turn", "ref": frame.get("ref"), "message_id": message_id, "data": created}
                )
                alive = alive and await self._stream(send, message_id, after=0)
            elif kind == "subscribe":
                alive = await self._stream(send, frame["message_id"], after=frame.get("after") or 0)
            elif kind == "cancel":
                alive = True
            else:
                alive = await send(
                    {
                        "type": "error",
                        "data": {"code": "validation_error", "message": f"Unknown frame {kind!r}."},
                    }
                )
            if not alive:
                return

    async def _stream(self, send: Any, message_id: str, *, after: int) -> bool:
        for seq, (name, data) in enumerate(self.events, start=1):
            if seq > after and not await send(
                {"type": name, "message_id": message_id, "seq": seq, "data": data}
            ):
                return False
        return True

    def sent_of(self, kind: str) -> list[dict[str, Any]]:
        return [frame for frame in self.received if frame.get("type") == kind]
