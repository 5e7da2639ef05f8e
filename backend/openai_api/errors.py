"""Errors on ``/openai/v1/*`` in OpenAI's shape, ``{"error": {"message", "type", "code", "param"}}``: the one
OpenAI's client libraries parse (they map the status to an exception and read ``code``). Surge's own
``ApiError`` hierarchy is still what is raised; only the envelope differs, chosen by route (a route-scoped
exception handler, and the auth middleware's zone)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.openapi import ResponseSpec
from litestar.types import ExceptionHandlersMap

from backend.errors import (
    DEFAULT_RETRY_AFTER_S,
    EXCEPTION_HANDLERS,
    ApiError,
    DatabaseUnavailable,
    NotFound,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
    ValidationFailed,
    api_error_for,
    retry_after_header,
)


class ModelNotFound(NotFound):
    code = "model_not_found"
    default_message = "The model does not exist."


class OpenAIError(msgspec.Struct):
    message: str
    type: str
    code: str | None
    param: str | None


class OpenAIErrorEnvelope(msgspec.Struct):
    error: OpenAIError


# Surge's status -> OpenAI's (type, code). OpenAI names 401 and 404 "invalid_request_error" too.
_BY_STATUS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("requests", "rate_limit_exceeded"),
    503: ("server_error", "overloaded"),
}


def _type_and_code(error: ApiError) -> tuple[str, str]:
    if isinstance(error, QuotaExceeded):
        return "insufficient_quota", "insufficient_quota"
    if isinstance(error, ModelNotFound):
        return "invalid_request_error", "model_not_found"
    return _BY_STATUS.get(error.status_code, ("server_error", "internal_error"))


def _param(error: ApiError) -> str | None:
    return next(iter(error.fields), None) if error.fields else None


def openai_error_response(request: Request[Any, Any, Any], error: ApiError) -> Response[OpenAIErrorEnvelope]:
    """``error`` in OpenAI's envelope, with Retry-After on 429 and 503 (X-Request-ID is added app-wide)."""
    kind, code = _type_and_code(error)
    headers = dict(error.headers)  # e.g. a 405's Allow
    retry_after = error.retry_after_s
    if retry_after is None:
        retry_after = DEFAULT_RETRY_AFTER_S.get(error.status_code)
    if retry_after is not None:
        headers["Retry-After"] = retry_after_header(retry_after)
    body = OpenAIError(message=error.message, type=kind, code=code, param=_param(error))
    return Response(
        OpenAIErrorEnvelope(error=body),
        status_code=error.status_code,
        headers=headers,
        media_type=MediaType.JSON,
    )


def handle_openai_error(request: Request[Any, Any, Any], exc: Exception) -> Response[OpenAIErrorEnvelope]:
    return openai_error_response(request, api_error_for(request, exc))


# Every key of the app's own map (backend.errors) is overridden: Litestar picks a handler by the
# exception's class first and the layer second, so an app-level ApiError handler would beat this router's
# Exception handler.
OPENAI_EXCEPTION_HANDLERS: ExceptionHandlersMap = dict.fromkeys(EXCEPTION_HANDLERS, handle_openai_error)


def openai_error_responses(*errors: type[ApiError]) -> dict[int, ResponseSpec]:
    """OpenAPI entries for a route's errors, in OpenAI's envelope (every route may answer 400, 401, 500, and
    503 when the database that holds the keys is unreachable)."""
    documented: dict[int, list[str]] = {}
    kinds: list[type[ApiError]] = [ValidationFailed, Unauthorized, *errors, DatabaseUnavailable, ApiError]
    for error in kinds:
        documented.setdefault(error.status_code, []).append(_describe(error))
    return {
        status: ResponseSpec(
            data_container=OpenAIErrorEnvelope,
            generate_examples=False,
            description=" or ".join(codes) + (" (with `Retry-After`)" if status in (429, 503) else ""),
        )
        for status, codes in documented.items()
    }


def _describe(error: type[ApiError]) -> str:
    if error is QuotaExceeded:
        return "`insufficient_quota`"
    if error is ModelNotFound:
        return "`model_not_found`"
    if error is RateLimited:
        return "`rate_limit_exceeded`"
    return f"`{_BY_STATUS.get(error.status_code, ('', 'internal_error'))[1]}`"
