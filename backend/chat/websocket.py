"""``GET /v1/ws``: one socket per app instance, multiplexing any number of turns (API.md, WebSocket)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from backend.accounts.auth import Authenticator
from backend.admission.client_ip import ClientIps
from backend.admission.deps import SocketSlots, TurnRate
from backend.admission.ratelimit import TurnRateLimit
from backend.admission.slots import Slot, UserSlots
from backend.chat.deps import Streams, Turns
from backend.chat.events import WsFrame, ws_frame
from backend.chat.schemas import Content, ModelId
from backend.chat.service import TurnRequest, TurnService
from backend.chat.stream import TurnStreams
from backend.conversations.schemas import message_view
from backend.db import models as m
from backend.deps import SettingsDep
from backend.errors import (
    ApiError,
    DatabaseUnavailable,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
    is_database_outage,
)
from backend.request_guard import CONTAINS_NUL, contains_nul

logger = logging.getLogger("surge.chat")

AUTH_TIMEOUT_S = 10.0
CLOSE_UNAUTHORIZED = 4401
# RFC 6455's "message too big": a frame over the HTTP body cap (SURGE_MAX_BODY_BYTES) ends the socket, as
# the same bytes in a request body would be a 413. The server's own limit (uvicorn's 16 MiB) is far above.
CLOSE_TOO_BIG = 1009
# "Try again later": this user already has as many sockets open as allowed.
CLOSE_TRY_LATER = 1013
Ref = Annotated[str, msgspec.Meta(max_length=128)]


class AuthFrame(msgspec.Struct, tag="auth", tag_field="type"):
    access_token: str


class SendFrame(msgspec.Struct, tag="send", tag_field="type"):
    conversation_id: UUID
    content: Content
    parent_id: UUID | msgspec.UnsetType | None = msgspec.UNSET
    model: ModelId | None = None
    thinking: bool | None = None
    idempotency_key: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    ref: Ref | None = None
    stream: bool = False  # unused on a socket: a send always subscribes to its answer


class SubscribeFrame(msgspec.Struct, tag="subscribe", tag_field="type"):
    message_id: UUID
    after: Annotated[int, msgspec.Meta(ge=0)] = 0
    ref: Ref | None = None


class CancelFrame(msgspec.Struct, tag="cancel", tag_field="type"):
    message_id: UUID
    ref: Ref | None = None


class PingFrame(msgspec.Struct, tag="ping", tag_field="type"):
    ref: Ref | None = None


ClientFrame = AuthFrame | SendFrame | SubscribeFrame | CancelFrame | PingFrame
_decode = msgspec.json.Decoder(ClientFrame).decode


def _decode_frame(raw: str) -> ClientFrame:
    """A client frame, refusing what HTTP bodies refuse too (``backend.request_guard``): U+0000 in any
    string, nesting deep enough to exhaust the stack."""
    try:
        frame = _decode(raw)
    except RecursionError as exc:
        raise ValidationFailed("The frame is nested too deeply.") from exc
    if "\\u0000" in raw and contains_nul(msgspec.json.decode(raw)):
        raise ValidationFailed(f"Text must not contain U+0000 ({CONTAINS_NUL}).")
    return frame


def frame_size(raw: str) -> int:
    """A text frame's size in bytes (UTF-8), counting without encoding when the characters alone decide."""
    return len(raw) if raw.isascii() else len(raw.encode())


_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class SocketServices:
    """What a socket's frames use (the handler gets each from its domain's providers)."""

    turns: TurnService
    streams: TurnStreams
    authenticator: Authenticator
    turn_rate_limit: TurnRateLimit


class Session:
    """One authenticated socket: a writer, the subscriptions it follows, the token's expiry."""

    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        services: SocketServices,
        *,
        user_id: UUID,
        expires_at: datetime,
        client_ip: str,
    ) -> None:
        self.socket = socket
        self.services = services
        self.user_id = user_id
        self.expires_at = expires_at
        self.client_ip = client_ip
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1024)
        self.subscriptions: dict[UUID, asyncio.Task[None]] = {}
        self.overflowed = asyncio.Event()

    def send(self, frame: bytes) -> None:
        # A client too slow to drain a thousand frames is dropped rather than buffered without bound.
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed.set()

    def error(self, code: str, message: str, ref: str | None = None) -> None:
        self.send(_encode(WsFrame(type="error", data={"code": code, "message": message}, ref=ref)))

    async def writer(self) -> None:
        while not self.overflowed.is_set():
            await self.socket.send_text((await self.outbox.get()).decode())

    async def user(self) -> m.User:
        """The account, looked up again for each frame that acts: a deleted account stops at once."""
        try:
            return await self.services.authenticator.user_by_id(self.user_id)
        except Unauthorized:
            raise NotFound("The account no longer exists.") from None

    def subscribe(self, message: m.Message, after: int) -> None:
        previous = self.subscriptions.pop(message.id, None)
        if previous is not None:
            previous.cancel()
        self.subscriptions[message.id] = asyncio.create_task(self._follow(message, after))

    async def _follow(self, message: m.Message, after: int) -> None:
        async for batch in self.services.streams.events(message, after, transport="websocket"):
            for event in batch or ():
                self.send(ws_frame(message.id, event))
        self.subscriptions.pop(message.id, None)

    async def handle(self, frame: ClientFrame) -> None:
        if isinstance(frame, PingFrame):
            self.send(_encode(WsFrame(type="pong", data={}, ref=frame.ref)))
        elif isinstance(frame, AuthFrame):
            verified = self.services.authenticator.access_tokens.verify(frame.access_token)
            if verified is None or verified[0] != self.user_id:
                self.error("unauthorized", "Invalid access token.")
            else:
                self.expires_at = verified[1]  # a fresh token extends the socket's life
        elif isinstance(frame, SendFrame):
            user = await self.user()
            await self.services.turn_rate_limit.check(user.id, self.client_ip)
            request = TurnRequest(
                content=frame.content, parent_id=frame.parent_id, model=frame.model, thinking=frame.thinking
            )
            accepted = await self.services.turns.send(
                user, frame.conversation_id, request, frame.idempotency_key
            )
            answer = accepted.assistant_message
            data = {
                "user_message": msgspec.to_builtins(message_view(accepted.user_message)),
                "assistant_message": msgspec.to_builtins(message_view(answer)),
            }
            self.send(_encode(WsFrame(type="turn", data=data, message_id=answer.id, ref=frame.ref)))
            self.subscribe(answer, 0)
        elif isinstance(frame, SubscribeFrame):
            message = await self.services.turns.owned_answer(self.user_id, frame.message_id)
            self.subscribe(message, frame.after)
        elif isinstance(frame, CancelFrame):
            await self.services.turns.cancel(await self.user(), frame.message_id)

    async def close(self) -> None:
        for task in self.subscriptions.values():
            task.cancel()
        await asyncio.gather(*self.subscriptions.values(), return_exceptions=True)


async def _authenticate(
    socket: WebSocket[Any, Any, Any], authenticator: Authenticator
) -> tuple[UUID, datetime] | None:
    try:
        raw = await asyncio.wait_for(socket.receive_data(mode="text"), AUTH_TIMEOUT_S)
        frame = _decode_frame(raw)
    except (TimeoutError, msgspec.DecodeError, msgspec.ValidationError, ValidationFailed):
        return None
    if not isinstance(frame, AuthFrame):
        return None
    verified = authenticator.access_tokens.verify(frame.access_token)
    if verified is None:
        return None
    try:
        await authenticator.user_by_id(verified[0])  # the account must still exist
    except ApiError:
        return None
    return (verified[0], verified[1])


async def _take_slot(socket: WebSocket[Any, Any, Any], slots: UserSlots, user_id: UUID) -> Slot | None:
    """One of the user's socket places; else tell the client why (as a 429 would) and close 1013."""
    try:
        return slots.take(user_id)
    except RateLimited as exc:
        data = {"code": exc.code, "message": exc.message, "retry_after_s": exc.retry_after_s}
        await socket.send_text(_encode(WsFrame(type="error", data=data)).decode())
        await socket.close(code=CLOSE_TRY_LATER, reason="too many sockets")
        return None


@websocket("/v1/ws", exclude_from_auth=True)
async def chat_socket(
    socket: WebSocket[Any, Any, Any],
    turns: Turns,
    streams: Streams,
    authenticator: NamedDependency[Authenticator],
    turn_rate_limit: TurnRate,
    client_ips: NamedDependency[ClientIps],
    socket_slots: SocketSlots,
    settings: SettingsDep,
) -> None:
    await socket.accept()
    verified = await _authenticate(socket, authenticator)
    if verified is None:
        await socket.close(code=CLOSE_UNAUTHORIZED, reason="unauthorized")
        return
    user_id, expires_at = verified
    slot = await _take_slot(socket, socket_slots, user_id)
    if slot is None:
        return
    services = SocketServices(
        turns=turns, streams=streams, authenticator=authenticator, turn_rate_limit=turn_rate_limit
    )
    session = Session(
        socket, services, user_id=user_id, expires_at=expires_at, client_ip=client_ips.of(socket)
    )
    try:
        await _serve(socket, session, max_frame_bytes=settings.server.max_body_bytes)
    finally:
        slot.release()


async def _serve(socket: WebSocket[Any, Any, Any], session: Session, *, max_frame_bytes: int) -> None:
    """Read frames and write events until the client leaves, its token expires or it reads too slowly."""
    writer = asyncio.create_task(session.writer())
    receiver = asyncio.create_task(_receive(socket, session, max_frame_bytes))
    try:
        while not receiver.done():
            remaining = (session.expires_at - datetime.now(UTC)).total_seconds()
            if remaining <= 0:
                await asyncio.sleep(0.2)  # let queued frames out before closing
                await socket.close(code=CLOSE_UNAUTHORIZED, reason="access token expired")
                break
            await asyncio.wait(
                {receiver, writer}, timeout=min(remaining, 30.0), return_when=asyncio.FIRST_COMPLETED
            )
            if writer.done() or session.overflowed.is_set():
                await socket.close(code=1013, reason="client too slow")
                break
    finally:
        for task in (receiver, writer):
            task.cancel()
        await asyncio.gather(receiver, writer, return_exceptions=True)
        await session.close()


async def _receive(socket: WebSocket[Any, Any, Any], session: Session, max_frame_bytes: int) -> None:
    while True:
        try:
            raw = await socket.receive_data(mode="text")
        except WebSocketDisconnect:
            return
        if frame_size(raw) > max_frame_bytes:
            await socket.close(code=CLOSE_TOO_BIG, reason=f"frame over {max_frame_bytes} bytes")
            return
        ref = None
        try:
            frame = _decode_frame(raw)
            ref = getattr(frame, "ref", None)
            await session.handle(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            session.error("validation_error", f"Bad frame: {exc}")
        except ApiError as exc:
            session.error(exc.code, exc.message, ref)
        except Exception as exc:
            if is_database_outage(exc):  # retryable, as the same failure over HTTP is a 503
                unavailable = DatabaseUnavailable()
                session.error(unavailable.code, unavailable.message, ref)
                continue
            logger.exception("websocket frame failed")
            session.error("internal", "Internal error.", ref)
