"""API errors and the one envelope every failure is answered with.

The hierarchy (status, stable ``code``)::

    ApiError (500 internal)
    ├── ValidationFailed (400 validation_error)
    ├── Unauthorized (401 unauthorized)
    ├── Forbidden (403 forbidden)
    ├── NotFound (404 not_found)
    ├── MethodNotAllowed (405 method_not_allowed)
    ├── Conflict (409 conflict)
    ├── PayloadTooLarge (413 payload_too_large)
    ├── RateLimited (429 rate_limited)
    ├── QuotaExceeded (429 quota_exceeded)
    ├── Overloaded (503 overloaded)
    ├── UpstreamUnavailable (503 upstream_unavailable)
    │   └── DatabaseUnavailable (503 upstream_unavailable: the database, not a worker)
    └── SignupsPaused (503 signups_paused)
"""

from __future__ import annotations

import logging
import math
import socket
import traceback
from datetime import datetime
from typing import Any, ClassVar

import asyncpg
import msgspec
from advanced_alchemy.exceptions import IntegrityError as RepositoryIntegrityError
from advanced_alchemy.exceptions import NotFoundError as RepositoryNotFoundError
from advanced_alchemy.exceptions import RepositoryError
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi import ResponseSpec
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from backend.observability.request_id import request_id_of

logger = logging.getLogger("surge.errors")

# Litestar raises a 500 with this detail when the client goes away mid-body.
CLIENT_DISCONNECTED = "client disconnected prematurely"


class ApiError(Exception):
    """A failure the client is told about, with a stable machine-readable ``code``."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    default_message: ClassVar[str] = "Internal error."

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after_s: float | None = None,
        fields: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.retry_after_s = retry_after_s
        self.fields = fields
        self.extra = extra or {}
        # Headers the answer must carry besides Retry-After (a 405's Allow).
        self.headers = headers or {}
        super().__init__(self.message)


class ValidationFailed(ApiError):
    status_code = 400
    code = "validation_error"
    default_message = "The request is not valid."


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"
    default_message = "Missing, expired or invalid credentials."


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"
    default_message = "Not allowed."


class NotFound(ApiError):
    status_code = 404
    code = "not_found"
    default_message = "Not found."


class MethodNotAllowed(ApiError):
    status_code = 405
    code = "method_not_allowed"
    default_message = "Method not allowed on this route."


class Conflict(ApiError):
    status_code = 409
    code = "conflict"
    default_message = "Conflicts with the current state."


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"
    default_message = "The request body is too large."


class RateLimited(ApiError):
    status_code = 429
    code = "rate_limited"
    default_message = "Too many requests; retry later."


class QuotaExceeded(ApiError):
    status_code = 429
    code = "quota_exceeded"
    default_message = "Usage quota exceeded."

    def __init__(self, message: str | None = None, *, resets_at: datetime, retry_after_s: float) -> None:
        super().__init__(message, retry_after_s=retry_after_s, extra={"resets_at": resets_at})


class Overloaded(ApiError):
    status_code = 503
    code = "overloaded"
    default_message = "The service is busy; retry later."


class UpstreamUnavailable(ApiError):
    status_code = 503
    code = "upstream_unavailable"
    default_message = "No inference worker is available; retry later."


class DatabaseUnavailable(UpstreamUnavailable):
    """The database is unreachable (restarting, failing over, pool exhausted): retryable, like a missing
    worker. API.md has no code of its own for it; ``upstream_unavailable`` is the retryable 503 a client
    already handles."""

    default_message = "The database is unreachable; retry later."


class SignupsPaused(ApiError):
    status_code = 503
    code = "signups_paused"
    default_message = "Sign-ups are paused while demand is high; retry later."


# 429 and 503 must carry Retry-After; these are used when the raiser did not say.
DEFAULT_RETRY_AFTER_S = {429: 10.0, 503: 5.0}


class ErrorBody(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    request_id: str
    retry_after_s: float | None = None
    fields: dict[str, str] | None = None
    resets_at: datetime | None = None


class ErrorEnvelope(msgspec.Struct):
    """``{"error": {...}}``: the shape of every error response."""

    error: ErrorBody


def error_responses(*errors: type[ApiError]) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the errors a route can answer with, in Surge's envelope (not Litestar's).

    Every route can fail validation (400), find its database unreachable (503, ``DatabaseUnavailable``)
    or hit a bug (500); name the rest.
    """
    documented: dict[int, list[str]] = {}
    kinds: list[type[ApiError]] = [ValidationFailed, *errors, DatabaseUnavailable, ApiError]
    for error in kinds:
        codes = documented.setdefault(error.status_code, [])
        if error.code not in codes:
            codes.append(error.code)
    return {
        status: ResponseSpec(
            data_container=ErrorEnvelope,
            generate_examples=False,
            description=" or ".join(f"`{code}`" for code in codes),
        )
        for status, codes in documented.items()
    }


def retry_after_header(seconds: float) -> str:
    # Retry-After is whole seconds; never round a wait down to zero.
    return str(max(1, math.ceil(seconds)))


def error_response(request: Request[Any, Any, Any], error: ApiError) -> Response[ErrorEnvelope]:
    retry_after = error.retry_after_s
    if retry_after is None and error.status_code in DEFAULT_RETRY_AFTER_S:
        retry_after = DEFAULT_RETRY_AFTER_S[error.status_code]
    headers = dict(error.headers)
    if retry_after is not None:
        retry_after = float(retry_after_header(retry_after))
        headers["Retry-After"] = retry_after_header(retry_after)
    body = ErrorBody(
        code=error.code,
        message=error.message,
        request_id=request_id_of(request.scope),
        retry_after_s=retry_after,
        fields=error.fields,
        resets_at=error.extra.get("resets_at"),
    )
    return Response(
        ErrorEnvelope(error=body), status_code=error.status_code, headers=headers, media_type=MediaType.JSON
    )


def _validation_fields(exc: ValidationException) -> dict[str, str]:
    fields: dict[str, str] = {}
    if isinstance(exc.extra, list):
        for item in exc.extra:
            if isinstance(item, dict):
                key = str(item.get("key") or item.get("source") or "body")
                fields[key] = str(item.get("message", "invalid"))
    return fields


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception, what it was raised from or during, and the driver error SQLAlchemy wraps, outermost
    first (cycles cut)."""
    chain: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if current in chain:
            continue
        chain.append(current)
        if isinstance(current, DBAPIError) and isinstance(current.orig, BaseException):
            pending.append(current.orig)
        if (following := current.__cause__ or current.__context__) is not None:
            pending.append(following)
    return chain


# The driver's ways of saying the server is gone or not accepting connections (a restart, a failover).
_ASYNCPG_OUTAGES: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)


_DRIVER_MODULES = ("/sqlalchemy/", "/asyncpg/", "/aiosqlite/")


def _raised_by_driver(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    return any(module in frame.filename for frame in frames for module in _DRIVER_MODULES)


def is_database_outage(exc: BaseException) -> bool:
    """A failure to reach the database rather than a statement it refused: a refused, lost or invalidated
    connection, a server shutting down or starting up, no pooled connection free in time. (Not every
    ``OperationalError``: SQLite raises it for a missing table too, which is a bug, a 500.)"""
    causes = _causes(exc)
    # A network error counts when SQLAlchemy wrapped it or it came out of the database driver (asyncpg
    # raises the OSError of a refused connect as it is); the same error from elsewhere is not an outage.
    wrapped = any(isinstance(cause, SQLAlchemyError | RepositoryError) for cause in causes)
    for cause in causes:
        if isinstance(cause, PoolTimeoutError):
            return True
        if isinstance(cause, ConnectionError | TimeoutError | socket.gaierror) and (
            wrapped or _raised_by_driver(cause)
        ):
            return True
        if isinstance(cause, _ASYNCPG_OUTAGES):
            return True
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
    return False


def database_error_of(exc: Exception) -> ApiError:
    """The error a client is told about for a database failure a route did not handle itself.

    Advanced Alchemy's repositories wrap every failed statement, a lost connection included, in its own
    ``IntegrityError``; its default handler then answered ``409 {"status_code", "detail"}``, so a database
    restart at sign-up read as "email taken". Here an outage is a retryable 503, a real constraint
    violation a 409 and anything else a 500 (logged), all in Surge's envelope."""
    if is_database_outage(exc):
        logger.warning("database unreachable: %s", type(exc).__name__)
        return DatabaseUnavailable()
    if isinstance(exc, RepositoryNotFoundError):
        return NotFound()
    if isinstance(exc, RepositoryIntegrityError) and any(
        isinstance(c, SQLIntegrityError) for c in _causes(exc)
    ):
        return Conflict()
    if isinstance(exc, SQLIntegrityError):
        return Conflict()
    logger.error("unhandled database error", exc_info=exc)
    return ApiError()


def api_error_of(exc: HTTPException) -> ApiError:
    """Litestar's own error as the ``ApiError`` Surge answers it with (whatever the envelope)."""
    error: ApiError
    if isinstance(exc, ValidationException):
        fields = _validation_fields(exc)
        message = exc.detail if exc.detail and exc.detail != "Bad Request" else "The request is not valid."
        error = ValidationFailed(message, fields=fields or None)
    elif isinstance(exc, NotAuthorizedException):
        error = Unauthorized()
    elif isinstance(exc, PermissionDeniedException):
        error = Forbidden()
    elif isinstance(exc, NotFoundException):
        error = NotFound()
    elif isinstance(exc, MethodNotAllowedException):
        # RFC 9110: a 405 lists the methods the route has (Litestar's router put them in `allow`).
        allow = next((value for name, value in (exc.headers or {}).items() if name.lower() == "allow"), None)
        error = MethodNotAllowed(headers={"Allow": allow} if allow else None)
    elif isinstance(exc, RequestEntityTooLarge):
        error = PayloadTooLarge()
    elif exc.status_code == 429:
        error = RateLimited()
    elif 400 <= exc.status_code < 500:
        # Other client errors Litestar raises (malformed JSON, bad Content-Length) are validation errors.
        error = ValidationFailed(exc.detail or None)
    elif exc.detail == CLIENT_DISCONNECTED:
        # The client hung up while sending its body (a phone losing signal): nobody will read an answer,
        # and it is not a server error.
        logger.info("client disconnected before sending the whole body")
        error = ValidationFailed("The request body was cut off.")
    else:
        logger.error("unhandled server error", exc_info=exc)
        error = ApiError()
    return error


def api_error_for(request: Request[Any, Any, Any], exc: Exception) -> ApiError:
    """What a client is told about ``exc``, whatever envelope carries it (Surge's, or OpenAI's under
    ``/openai/v1``): Surge's own errors as raised, Litestar's translated, a database failure as
    ``database_error_of`` says (an unreachable database raises a bare ``OSError`` while connecting: a
    retryable 503 too), and anything else is a bug: logged with the request id, told as a bare 500."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, HTTPException):
        return api_error_of(exc)
    if isinstance(exc, RepositoryError | SQLAlchemyError) or is_database_outage(exc):
        return database_error_of(exc)
    logger.error("unhandled exception", exc_info=exc, extra={"request_id": request_id_of(request.scope)})
    return ApiError()


def handle_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorEnvelope]:
    return error_response(request, api_error_for(request, exc))


# One handler for every class, registered per class: Litestar picks a handler by the exception's class,
# and the database classes' entries also keep Advanced Alchemy's plugin from installing its own handler
# (409 outside the envelope).
EXCEPTION_HANDLERS: ExceptionHandlersMap = dict.fromkeys(
    (ApiError, HTTPException, RepositoryError, SQLAlchemyError, Exception), handle_error
)
