"""Every error the SDK raises, mirroring HTTP statuses and the ``code`` of Surge's error envelope.

The hierarchy::

    SurgeError
    ├── APIError                          a request to Surge failed
    │   ├── APIConnectionError            no response: DNS, refused, reset, TLS, ...
    │   │   └── APITimeoutError           no response in time
    │   └── APIStatusError                a 4xx/5xx response (status_code, code, request_id, retry_after)
    │       ├── BadRequestError           400 validation_error (with ``fields``)
    │       ├── AuthenticationError       401 unauthorized
    │       ├── PermissionDeniedError     403 forbidden
    │       ├── NotFoundError             404 not_found
    │       ├── ConflictError             409 conflict
    │       ├── PayloadTooLargeError      413 payload_too_large
    │       ├── RateLimitError            429 rate_limited
    │       │   └── QuotaExceededError    429 quota_exceeded (with ``resets_at``)
    │       ├── ServiceUnavailableError   503, any code
    │       │   ├── OverloadedError           503 overloaded
    │       │   ├── UpstreamUnavailableError  503 upstream_unavailable
    │       │   └── SignupsPausedError        503 signups_paused
    │       └── InternalServerError       500 internal, and any other 5xx
    ├── TurnFailedError                   a turn's stream ended with an ``error`` event
    └── RealtimeError                     the WebSocket session cannot go on

Other statuses (405, 408, ...) raise a plain ``APIStatusError``.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import msgspec

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "RealtimeError",
    "ServiceUnavailableError",
    "SignupsPausedError",
    "SurgeError",
    "TurnFailedError",
    "UpstreamUnavailableError",
]


class SurgeError(Exception):
    """The base of every exception this SDK raises."""


class APIError(SurgeError):
    """A request to Surge failed; ``request`` is the last attempt.

    Every API error has ``status_code``, ``code``, ``request_id`` and ``retry_after``; they are ``None``
    when no response arrived.
    """

    status_code: int | None = None
    code: str | None = None
    request_id: str | None = None
    retry_after: float | None = None

    def __init__(self, message: str, *, request: httpx.Request) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


class APIConnectionError(APIError):
    """No response arrived: the connection could not be made or broke (after every retry)."""

    def __init__(self, *, request: httpx.Request, message: str = "Connection error.") -> None:
        super().__init__(message, request=request)


class APITimeoutError(APIConnectionError):
    """No response arrived within the timeout (after every retry)."""

    def __init__(self, *, request: httpx.Request) -> None:
        super().__init__(request=request, message="Request timed out.")


class APIStatusError(APIError):
    """Surge answered with a 4xx or 5xx status and its error envelope."""

    status_code: int
    code: str | None
    """The envelope's stable machine-readable ``code`` (``rate_limited``, ``not_found``, ...)."""
    request_id: str | None
    """The ``X-Request-ID`` of the failed request: quote it when reporting a problem."""
    retry_after: float | None
    """Seconds the server asked the client to wait (``Retry-After``), on 429 and 503."""
    fields: dict[str, str] | None
    """For ``validation_error``: which fields were wrong, and why."""
    body: Any
    """The decoded JSON body (or the raw text when it was not JSON)."""

    def __init__(self, message: str, *, response: httpx.Response, body: Any) -> None:
        super().__init__(message, request=response.request)
        self.response = response
        self.status_code = response.status_code
        self.body = body
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        self.code = _str_or_none(error.get("code"))
        self.request_id = _str_or_none(error.get("request_id")) or response.headers.get("x-request-id")
        self.retry_after = _retry_after(error.get("retry_after_s"), response.headers.get("retry-after"))
        raw_fields = error.get("fields")
        self.fields = (
            {str(key): str(value) for key, value in raw_fields.items()}
            if isinstance(raw_fields, dict)
            else None
        )

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        request_id = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.status_code}{code}: {self.message}{request_id}"


class BadRequestError(APIStatusError):
    """400 ``validation_error``: malformed JSON, wrong types, limits exceeded."""


class AuthenticationError(APIStatusError):
    """401 ``unauthorized``: missing, expired or revoked token, or wrong email or password."""


class PermissionDeniedError(APIStatusError):
    """403 ``forbidden``: signed in, but not allowed (admin routes)."""


class NotFoundError(APIStatusError):
    """404 ``not_found``: it does not exist, or it belongs to someone else."""


class ConflictError(APIStatusError):
    """409 ``conflict``: e.g. an email already registered, an idempotency key reused with another body."""


class PayloadTooLargeError(APIStatusError):
    """413 ``payload_too_large``: the request body is over the server's limit."""


class RateLimitError(APIStatusError):
    """429 ``rate_limited``: too many requests, or too many turns generating at once."""


class QuotaExceededError(RateLimitError):
    """429 ``quota_exceeded``: the tier's usage quota is spent until ``resets_at``."""

    resets_at: datetime | None

    def __init__(self, message: str, *, response: httpx.Response, body: Any) -> None:
        super().__init__(message, response=response, body=body)
        error = body.get("error") if isinstance(body, dict) else None
        raw = error.get("resets_at") if isinstance(error, dict) else None
        try:
            self.resets_at = msgspec.convert(raw, datetime) if isinstance(raw, str) else None
        except msgspec.ValidationError:
            self.resets_at = None


class ServiceUnavailableError(APIStatusError):
    """503: Surge cannot take this request now; ``retry_after`` says when to come back."""


class OverloadedError(ServiceUnavailableError):
    """503 ``overloaded``: load is being shed."""


class UpstreamUnavailableError(ServiceUnavailableError):
    """503 ``upstream_unavailable``: no healthy inference worker for the model."""


class SignupsPausedError(ServiceUnavailableError):
    """503 ``signups_paused``: sign-ups are closed while demand is high."""


class InternalServerError(APIStatusError):
    """500 ``internal`` (a bug on the server), or another 5xx such as 502 and 504 from a proxy."""


class TurnFailedError(SurgeError):
    """A turn ended with an ``error`` event (its assistant message is ``failed``; the user message is kept).

    Raised by a stream's helpers (``text_stream``, ``until_done()``, ``final_message()``); iterating the
    stream yields the ``ErrorEvent`` instead.
    """

    def __init__(
        self, *, code: str, message: str, message_id: str | None, retry_after: float | None = None
    ) -> None:
        super().__init__(f"turn failed ({code}): {message}")
        self.code = code
        self.message = message
        self.message_id = message_id
        self.retry_after = retry_after


class RealtimeError(SurgeError):
    """The WebSocket session closed and could not be resumed (or was used after ``close()``)."""

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


_BY_CODE: dict[str, type[APIStatusError]] = {
    "validation_error": BadRequestError,
    "unauthorized": AuthenticationError,
    "forbidden": PermissionDeniedError,
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "payload_too_large": PayloadTooLargeError,
    "rate_limited": RateLimitError,
    "quota_exceeded": QuotaExceededError,
    "overloaded": OverloadedError,
    "upstream_unavailable": UpstreamUnavailableError,
    "signups_paused": SignupsPausedError,
    "internal": InternalServerError,
}

_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def status_error(response: httpx.Response) -> APIStatusError:
    """The exception for an error response whose body has been read."""
    try:
        body: Any = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        body = response.text
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message:
        message = response.reason_phrase or "Error"
    cls = _BY_CODE.get(code) if isinstance(code, str) else None
    # A code answered with an unexpected status (a proxy, a future server) is classified by status.
    if cls is None or _status_of(cls) not in (None, response.status_code):
        cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = InternalServerError if response.status_code >= 500 else APIStatusError
    return cls(message, response=response, body=body)


def _status_of(cls: type[APIStatusError]) -> int | None:
    for status, base in _BY_STATUS.items():
        if issubclass(cls, base):
            return status
    return 500 if issubclass(cls, InternalServerError) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _retry_after(body_value: Any, header: str | None) -> float | None:
    if isinstance(body_value, int | float) and not isinstance(body_value, bool):
        return float(body_value)
    return parse_retry_after(header)


def parse_retry_after(header: str | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; ``None`` when absent or malformed."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())
