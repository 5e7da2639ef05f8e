"""The WebSocket session (``GET /v1/ws``): many turns over one socket, resumed when the socket drops.

The session authenticates with the client's access token (refreshed first when it is about to expire)
and sends a fresh one on the open socket before the old one runs out. It remembers each ``send`` until
its ``turn`` frame arrives, and the last ``seq`` of every turn it follows.
When the socket closes under it — a network change, a server restart, or close code 4401 for an expired
token (then it refreshes the token first) — it reconnects, sends the unanswered sends again with their
idempotency keys (so no turn starts twice) and subscribes to each unfinished turn after the last ``seq``
it saw (and repeats a cancel whose turn has not ended yet). Frames it has already handed out are
dropped, so each event arrives exactly once. A ping lost with a socket is not repeated.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import msgspec
from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as sync_connect

from surge import _retry
from surge._events import DoneEvent, ErrorEvent, StreamEvent, TurnEvent
from surge._exceptions import RealtimeError
from surge._options import NOT_GIVEN, NotGiven
from surge._streaming import TurnProgress, _Gap
from surge._types import SurgeModel, Turn
from surge.resources.messages import new_idempotency_key

if TYPE_CHECKING:
    from surge._base_client import AsyncAPIClient, SyncAPIClient

__all__ = ["AsyncRealtimeSession", "FrameError", "Pong", "RealtimeFrame", "RealtimeSession"]

TOKEN_EXPIRED = 4401


class Pong(SurgeModel, kw_only=True):
    """The answer to ``ping()``."""

    type: Literal["pong"] = "pong"


class FrameError(SurgeModel, kw_only=True):
    """The server could not act on a frame this session sent (the socket stays open)."""

    type: Literal["frame_error"] = "frame_error"
    code: str
    message: str
    ref: str | None = None
    message_id: str | None = None


RealtimeFrame: TypeAlias = StreamEvent | Pong | FrameError


class _WireFrame(msgspec.Struct):
    type: str
    message_id: str | None = None
    seq: int | None = None
    ref: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"{}")


class _ErrorData(msgspec.Struct):
    code: str = "error"
    message: str = ""
    ref: str | None = None


class _TurnData(Turn, kw_only=True):
    ref: str | None = None


def websocket_url(base_url: str) -> str:
    """``http(s)://host/prefix/`` → ``ws(s)://host/prefix/v1/ws``."""
    scheme, _, rest = base_url.partition("://")
    ws_scheme = {"https": "wss", "http": "ws"}.get(scheme, scheme)
    return f"{ws_scheme}://{rest.rstrip('/')}/v1/ws"


class _SessionState:
    """What survives a reconnection: unanswered sends, followed turns and their last ``seq``."""

    def __init__(self) -> None:
        self.pending: dict[str, dict[str, Any]] = {}
        self.following: dict[str, TurnProgress] = {}
        self.finished: set[str] = set()
        self.cancelling: set[str] = set()
        self.catching_up: set[str] = set()
        self.closed = False
        self.reconnects = 0

    def send_frame(
        self,
        conversation_id: str,
        content: str,
        *,
        parent_id: str | NotGiven | None,
        model: str | None,
        thinking: bool | None,
        idempotency_key: str | None,
        ref: str | None,
    ) -> dict[str, Any]:
        frame: dict[str, Any] = {
            "type": "send",
            "conversation_id": conversation_id,
            "content": content,
            "idempotency_key": idempotency_key or new_idempotency_key(),
            "ref": ref or uuid.uuid4().hex,
        }
        if not isinstance(parent_id, NotGiven):
            frame["parent_id"] = parent_id  # None is sent as null: a new root
        options = {"model": model, "thinking": thinking}
        frame.update({name: value for name, value in options.items() if value is not None})
        self.pending[frame["ref"]] = frame
        return frame

    def subscribe_frame(self, message_id: str, after: int | None) -> dict[str, Any]:
        progress = self.following.get(message_id)
        if progress is None or after is not None:
            progress = self.following[message_id] = TurnProgress(message_id, after or 0)
        self.finished.discard(message_id)
        return {"type": "subscribe", "message_id": message_id, "after": progress.last_seq}

    def cancel_frame(self, message_id: str) -> dict[str, Any]:
        if message_id not in self.finished:
            self.cancelling.add(message_id)
        return {"type": "cancel", "message_id": message_id}

    def resume_frames(self) -> list[dict[str, Any]]:
        """What a new socket is sent: the unanswered sends, a subscription for each unfinished turn, and the
        cancels not yet seen through (cancelling twice is cancelling once)."""
        frames = list(self.pending.values())
        frames += [
            {"type": "subscribe", "message_id": message_id, "after": progress.last_seq}
            for message_id, progress in self.following.items()
            if message_id not in self.finished
        ]
        frames += [{"type": "cancel", "message_id": message_id} for message_id in sorted(self.cancelling)]
        return frames

    def decode(self, raw: str | bytes) -> tuple[RealtimeFrame | None, dict[str, Any] | None]:
        """The frame to hand out (``None`` to drop it) and a frame to send back (a re-subscription)."""
        wire = msgspec.json.decode(raw, type=_WireFrame)
        if wire.type == "pong":
            return Pong(), None
        if wire.type == "error" and wire.seq is None:
            error = msgspec.json.decode(wire.data, type=_ErrorData)
            return FrameError(
                code=error.code, message=error.message, ref=wire.ref or error.ref, message_id=wire.message_id
            ), None
        if wire.type == "turn":
            return self._turn(wire), None
        if wire.message_id is None or wire.message_id in self.finished:
            return None, None
        progress = self.following.get(wire.message_id)
        if progress is None:  # a turn this session did not start, followed from where it was joined
            start = (wire.seq or 1) - 1
            progress = self.following[wire.message_id] = TurnProgress(wire.message_id, start)
        try:
            event = progress.accept(wire.type, wire.data, wire.seq)
        except _Gap:
            if wire.message_id in self.catching_up:
                return None, None
            self.catching_up.add(wire.message_id)
            return None, {"type": "subscribe", "message_id": wire.message_id, "after": progress.last_seq}
        self.catching_up.discard(wire.message_id)
        if isinstance(event, DoneEvent | ErrorEvent):
            self.finished.add(wire.message_id)
            self.cancelling.discard(wire.message_id)
        return event, None

    def _turn(self, wire: _WireFrame) -> TurnEvent | None:
        data = msgspec.json.decode(wire.data, type=_TurnData)
        ref = wire.ref or data.ref
        if ref is not None:
            self.pending.pop(ref, None)
        message_id = data.assistant_message.id
        progress = self.following.setdefault(message_id, TurnProgress(message_id, 0))
        event = progress.accept_turn(data)
        return None if event is None else msgspec.structs.replace(event, ref=ref)


class RealtimeSession:
    """One WebSocket for many turns (``client.realtime()``); a context manager, iterable for frames.

    ```py
    with client.realtime() as session:
        session.send(conversation.id, "Hello!")
        for frame in session:
            if frame.type == "content":
                print(frame.delta, end="")
            elif frame.type in ("done", "error"):
                break
    ```
    """

    def __init__(self, client: SyncAPIClient, *, url: str | None = None, open_timeout: float = 10.0) -> None:
        self._client = client
        self.url = url or websocket_url(str(client.base_url))
        self._open_timeout = open_timeout
        self._state = _SessionState()
        self._ws: ClientConnection | None = None
        self._token: str | None = None

    @property
    def reconnects(self) -> int:
        """How many times the session reconnected after its socket closed."""
        return self._state.reconnects

    def __enter__(self) -> RealtimeSession:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Open the socket and authenticate (``__enter__`` does this)."""
        if self._ws is None:
            self._ws = self._open()

    def close(self) -> None:
        self._state.closed = True
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def send(
        self,
        conversation_id: str,
        content: str,
        *,
        parent_id: str | NotGiven | None = NOT_GIVEN,
        model: str | None = None,
        thinking: bool | None = None,
        idempotency_key: str | None = None,
        ref: str | None = None,
    ) -> str:
        """Send a message, like ``POST .../messages`` (``parent_id=None``: a new root); returns the ``ref``
        its ``turn`` frame will carry."""
        frame = self._state.send_frame(
            conversation_id,
            content,
            parent_id=parent_id,
            model=model,
            thinking=thinking,
            idempotency_key=idempotency_key,
            ref=ref,
        )
        self._send(frame)
        return str(frame["ref"])

    def subscribe(self, message_id: str, *, after: int | None = None) -> None:
        """Follow a turn's events after ``seq`` ``after`` (default: after the last one this session saw)."""
        self._send(self._state.subscribe_frame(message_id, after))

    def cancel(self, message_id: str) -> None:
        """Stop a turn's generation; its events end with ``done`` (status ``cancelled``)."""
        self._send(self._state.cancel_frame(message_id))

    def ping(self) -> None:
        """Ask for a ``Pong`` frame."""
        self._send({"type": "ping"})

    def recv(self, timeout: float | None = None) -> RealtimeFrame:
        """The next frame; ``TimeoutError`` if none arrives within ``timeout`` seconds."""
        while True:
            ws = self._connected()
            try:
                self._keep_authenticated(ws)
                raw = ws.recv(timeout)
            except ConnectionClosed as exc:
                self._reconnect(exc)
                continue
            frame, reply = self._state.decode(raw)
            if reply is not None:
                self._send(reply)
            if frame is not None:
                return frame

    def __iter__(self) -> Iterator[RealtimeFrame]:
        while not self._state.closed:
            yield self.recv()

    def _connected(self) -> ClientConnection:
        if self._state.closed:
            raise RealtimeError("The session is closed.")
        if self._ws is None:
            self._ws = self._open()
        return self._ws

    def _keep_authenticated(self, ws: ClientConnection) -> None:
        # A fresh token sent on the open socket before the old one expires keeps the socket open (the server
        # closes it with 4401 at the old token's expiry otherwise).
        if self._client.tokens.needs_refresh() or self._client.tokens.access_token != self._token:
            token = self._client.access_token_for_connection()
            if token != self._token:
                ws.send(msgspec.json.encode({"type": "auth", "access_token": token}).decode())
                self._token = token

    def _open(self) -> ClientConnection:
        self._token = self._client.access_token_for_connection()
        ws = sync_connect(
            self.url,
            open_timeout=self._open_timeout,
            user_agent_header=self._client.user_agent,
            max_size=2**24,
        )
        # The session owns the connection across calls, which a `with` block cannot span; entering it by
        # hand is what `with` would do (and what websockets >= 17.1 asks of a managed connection).
        ws.__enter__()
        ws.send(msgspec.json.encode({"type": "auth", "access_token": self._token}).decode())
        return ws

    def _send(self, frame: dict[str, Any]) -> None:
        encoded = msgspec.json.encode(frame).decode()
        while True:
            ws = self._connected()
            try:
                self._keep_authenticated(ws)
                ws.send(encoded)
                return
            except ConnectionClosed as exc:
                # Sends, subscriptions and cancels are replayed by the reconnection itself.
                replayed = frame["type"] in ("send", "subscribe", "cancel")
                self._reconnect(exc)
                if replayed:
                    return

    def _reconnect(self, closed: ConnectionClosed) -> None:
        if self._state.closed:
            raise RealtimeError("The session is closed.")
        close_code = closed.rcvd.code if closed.rcvd is not None else None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None
        failures = 0
        while True:
            if close_code == TOKEN_EXPIRED:
                self._client.refresh_session(stale_token=self._token)
                close_code = None
            ws: ClientConnection | None = None
            try:
                ws = self._open()
                for frame in self._state.resume_frames():
                    ws.send(msgspec.json.encode(frame).decode())
            except (OSError, TimeoutError, WebSocketException) as exc:
                if ws is not None:
                    with contextlib.suppress(Exception):
                        ws.close()
                failures += 1
                if failures > self._client.max_stream_resumes:
                    raise RealtimeError(
                        f"The WebSocket could not be reopened: {exc}", close_code=close_code
                    ) from exc
                if isinstance(exc, ConnectionClosed) and exc.rcvd is not None:
                    close_code = exc.rcvd.code
                _retry.sleep(_retry.backoff(failures - 1))
                continue
            self._ws = ws
            self._state.reconnects += 1
            return


class AsyncRealtimeSession:
    """One WebSocket for many turns (``client.realtime()``); an async context manager, async-iterable.

    ```py
    async with client.realtime() as session:
        await session.send(conversation.id, "Hello!")
        async for frame in session:
            if frame.type == "content":
                print(frame.delta, end="")
            elif frame.type in ("done", "error"):
                break
    ```
    """

    def __init__(self, client: AsyncAPIClient, *, url: str | None = None, open_timeout: float = 10.0) -> None:
        self._client = client
        self.url = url or websocket_url(str(client.base_url))
        self._open_timeout = open_timeout
        self._state = _SessionState()
        self._ws: AsyncConnection | None = None
        self._token: str | None = None

    @property
    def reconnects(self) -> int:
        """How many times the session reconnected after its socket closed."""
        return self._state.reconnects

    async def __aenter__(self) -> AsyncRealtimeSession:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the socket and authenticate (``__aenter__`` does this)."""
        if self._ws is None:
            self._ws = await self._open()

    async def close(self) -> None:
        self._state.closed = True
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    async def send(
        self,
        conversation_id: str,
        content: str,
        *,
        parent_id: str | NotGiven | None = NOT_GIVEN,
        model: str | None = None,
        thinking: bool | None = None,
        idempotency_key: str | None = None,
        ref: str | None = None,
    ) -> str:
        """Send a message, like ``POST .../messages`` (``parent_id=None``: a new root); returns the ``ref``
        its ``turn`` frame will carry."""
        frame = self._state.send_frame(
            conversation_id,
            content,
            parent_id=parent_id,
            model=model,
            thinking=thinking,
            idempotency_key=idempotency_key,
            ref=ref,
        )
        await self._send(frame)
        return str(frame["ref"])

    async def subscribe(self, message_id: str, *, after: int | None = None) -> None:
        """Follow a turn's events after ``seq`` ``after`` (default: after the last one this session saw)."""
        await self._send(self._state.subscribe_frame(message_id, after))

    async def cancel(self, message_id: str) -> None:
        """Stop a turn's generation; its events end with ``done`` (status ``cancelled``)."""
        await self._send(self._state.cancel_frame(message_id))

    async def ping(self) -> None:
        """Ask for a ``Pong`` frame."""
        await self._send({"type": "ping"})

    async def recv(self) -> RealtimeFrame:
        """The next frame (wrap in ``asyncio.timeout()`` to bound the wait)."""
        while True:
            ws = await self._connected()
            try:
                await self._keep_authenticated(ws)
                raw = await ws.recv()
            except ConnectionClosed as exc:
                await self._reconnect(exc)
                continue
            frame, reply = self._state.decode(raw)
            if reply is not None:
                await self._send(reply)
            if frame is not None:
                return frame

    async def __aiter__(self) -> AsyncIterator[RealtimeFrame]:
        while not self._state.closed:
            yield await self.recv()

    async def _connected(self) -> AsyncConnection:
        if self._state.closed:
            raise RealtimeError("The session is closed.")
        if self._ws is None:
            self._ws = await self._open()
        return self._ws

    async def _keep_authenticated(self, ws: AsyncConnection) -> None:
        if self._client.tokens.needs_refresh() or self._client.tokens.access_token != self._token:
            token = await self._client.access_token_for_connection()
            if token != self._token:
                await ws.send(msgspec.json.encode({"type": "auth", "access_token": token}).decode())
                self._token = token

    async def _open(self) -> AsyncConnection:
        self._token = await self._client.access_token_for_connection()
        ws = await async_connect(
            self.url,
            open_timeout=self._open_timeout,
            user_agent_header=self._client.user_agent,
            max_size=2**24,
        )
        await ws.send(msgspec.json.encode({"type": "auth", "access_token": self._token}).decode())
        return ws

    async def _send(self, frame: dict[str, Any]) -> None:
        encoded = msgspec.json.encode(frame).decode()
        while True:
            ws = await self._connected()
            try:
                await self._keep_authenticated(ws)
                await ws.send(encoded)
                return
            except ConnectionClosed as exc:
                replayed = frame["type"] in ("send", "subscribe", "cancel")
                await self._reconnect(exc)
                if replayed:
                    return

    async def _reconnect(self, closed: ConnectionClosed) -> None:
        if self._state.closed:
            raise RealtimeError("The session is closed.")
        close_code = closed.rcvd.code if closed.rcvd is not None else None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
            self._ws = None
        failures = 0
        while True:
            if close_code == TOKEN_EXPIRED:
                await self._client.refresh_session(stale_token=self._token)
                close_code = None
            ws: AsyncConnection | None = None
            try:
                ws = await self._open()
                for frame in self._state.resume_frames():
                    await ws.send(msgspec.json.encode(frame).decode())
            except (OSError, TimeoutError, WebSocketException) as exc:
                if ws is not None:
                    with contextlib.suppress(Exception):
                        await ws.close()
                failures += 1
                if failures > self._client.max_stream_resumes:
                    raise RealtimeError(
                        f"The WebSocket could not be reopened: {exc}", close_code=close_code
                    ) from exc
                if isinstance(exc, ConnectionClosed) and exc.rcvd is not None:
                    close_code = exc.rcvd.code
                await _retry.async_sleep(_retry.backoff(failures - 1))
                continue
            self._ws = ws
            self._state.reconnects += 1
            return
