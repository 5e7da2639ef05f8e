"""What one API call is: method, path, body, per-call options; and the client-wide defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import httpx

__all__ = ["NOT_GIVEN", "NotGiven", "Timeout"]

Timeout: TypeAlias = float | httpx.Timeout | None

# Streams carry a ": ping" at least every 15 s, so a 60 s read timeout only fires on a dead connection.
DEFAULT_TIMEOUT: Final = httpx.Timeout(60.0, connect=10.0)
DEFAULT_MAX_RETRIES: Final = 2
DEFAULT_MAX_STREAM_RESUMES: Final = 5
DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000"

_REPLAY_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})


class NotGiven:
    """The default of an argument left out, where ``None`` means something (``display_name=None`` clears
    it, ``timeout=None`` disables it)."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()


def given(**values: Any) -> dict[str, Any]:
    """The arguments that were given (``NOT_GIVEN`` ones left out), as a JSON body."""
    return {name: value for name, value in values.items() if value is not NOT_GIVEN}


@dataclass(frozen=True, kw_only=True)
class RequestOptions:
    method: str
    path: str
    params: Mapping[str, Any] | None = None
    body: Any = None
    headers: Mapping[str, str] | None = None
    """Per-call ``extra_headers``; they win over the client's."""
    timeout: Timeout | NotGiven = NOT_GIVEN
    authenticated: bool = True
    idempotency_key: str | None = None
    """Sent as ``Idempotency-Key``; the same value on every retry of this call."""
    replay_safe: bool | None = None
    """Whether sending this twice has the effect of sending it once; ``None``: decided by the method (and
    an idempotency key makes any request safe)."""
    ok_statuses: frozenset[int] = frozenset()
    """Error statuses that are an answer here, not a failure (``/readyz`` says 503 when not ready)."""

    @property
    def is_replay_safe(self) -> bool:
        if self.replay_safe is not None:
            return self.replay_safe
        return self.idempotency_key is not None or self.method in _REPLAY_SAFE_METHODS
