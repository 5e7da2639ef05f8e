"""Bearer-token authentication: every request not marked public carries a valid access token, except
under a ``BearerZone`` (the OpenAI-compatible API), whose requests carry a credential of its own kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.accounts.tokens import AccessTokens
from backend.db import models as m
from backend.errors import ApiError, Forbidden, Unauthorized, error_response

_USER_BY_ID = select(m.User.id, m.User.email, m.User.display_name, m.User.tier, m.User.created_at).where(
    m.User.id == bindparam("user_id")
)


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Authenticator:
    """The user behind an access token, looked up each time so that a deleted account stops at once."""

    def __init__(self, access_tokens: AccessTokens, engine: AsyncEngine) -> None:
        self.access_tokens = access_tokens
        # One read, no transaction around it: BEGIN and ROLLBACK would double the round trips of a lookup
        # that every request makes.
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def user(self, token: str | None) -> m.User:
        user_id = self.access_tokens.user_id(token) if token else None
        if user_id is None:
            raise Unauthorized()
        return await self.user_by_id(user_id)

    async def user_by_id(self, user_id: UUID) -> m.User:
        """The account, if it still exists (a socket checks before each turn it starts)."""
        # A connection of its own, not the request's session (which may live as long as an SSE stream),
        # and a plain row rather than an ORM load: this runs on every request.
        async with self.engine.connect() as connection:
            row = (await connection.execute(_USER_BY_ID, {"user_id": user_id})).first()
        if row is None:
            raise Unauthorized()
        return m.User(
            id=row.id,
            email=row.email,
            display_name=row.display_name,
            tier=row.tier,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class BearerZone:
    """Paths whose bearer credential is not an access token: ``authenticate`` turns the token into the user
    and what it authenticated as (``request.auth``), and ``respond`` answers a refusal in the zone's own
    error shape. An access token is refused there, and the zone's credential everywhere else (it is no
    JWT), so neither can stand in for the other."""

    path_prefix: str
    authenticate: Callable[[str | None], Awaitable[tuple[m.User, Any]]]
    respond: Callable[[Request[Any, Any, Any], ApiError], Response[Any]]


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    """Every route not marked ``exclude_from_auth`` needs a valid access token (or the credential of the
    zone it lies in)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        zones: tuple[BearerZone, ...] = (),
        **options: Any,
    ) -> None:
        super().__init__(app, **options)
        self.authenticator = authenticator
        self.zones = zones

    def zone(self, path: str) -> BearerZone | None:
        return next((zone for zone in self.zones if path.startswith(zone.path_prefix)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate, or answer 401 right here: raised, the error would pass through the metrics
        middleware around this one, which would count the request under its default status (200). (Errors
        of the route itself are answered inside the route and never reach this far.)"""
        try:
            await super().__call__(scope, receive, send)
        except ApiError as error:
            if scope["type"] != ScopeType.HTTP:
                raise
            request: Request[Any, Any, Any] = Request(scope)
            zone = self.zone(scope["path"])
            respond = zone.respond if zone is not None else error_response
            response = respond(request, error).to_asgi_response(app=None, request=request)
            await response(scope, receive, send)

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        zone = self.zone(connection.scope["path"])
        if zone is not None:
            user, auth = await zone.authenticate(bearer_token(connection))
            return AuthenticationResult(user=user, auth=auth)
        user = await self.authenticator.user(bearer_token(connection))
        return AuthenticationResult(user=user, auth=None)


def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
    """A guard: the signed-in user must be of the ``admin`` tier (others get 403).

    ``OPTIONS`` passes: it only lists the route's methods, and authentication skips it (no user to check,
    which made it a 500)."""
    if connection.scope.get("method") == "OPTIONS":
        return
    user = connection.scope.get("user")
    if not isinstance(user, m.User) or user.tier != "admin":
        raise Forbidden("Administrators only.")
