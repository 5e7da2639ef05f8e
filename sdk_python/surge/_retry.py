"""When to retry a failed request and how long to wait first.

Retried: connection errors, 408, 409 with ``Retry-After``, 429, and 5xx; at most ``max_retries`` times,
waiting ``Retry-After`` when the server said (up to a minute), else exponential back-off from 0.5 s to
8 s with jitter. A request that is not safe to replay (a POST without an idempotency key) is retried
only when the server cannot have acted on it: the connection was never made, or the answer was 408, 429
or 503, which Surge gives before doing any work.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Final

import httpx

from surge._exceptions import parse_retry_after
from surge._options import RequestOptions

INITIAL_RETRY_DELAY: Final = 0.5
MAX_RETRY_DELAY: Final = 8.0
# A longer Retry-After (a spent quota, say) is not waited out inside a call: the error goes to the caller,
# with its retry_after, to decide.
MAX_RETRY_AFTER: Final = 60.0

_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_NOT_ACTED_ON = frozenset({408, 429, 503})


def sleep(seconds: float) -> None:
    """Every wait of the sync client; tests patch this to run instantly."""
    time.sleep(seconds)


async def async_sleep(seconds: float) -> None:
    """Every wait of the async client; tests patch this to run instantly."""
    await asyncio.sleep(seconds)


def backoff(retries_taken: int) -> float:
    """0.5 s, 1 s, 2 s, ... up to 8 s, each shortened by up to a quarter at random so clients spread out."""
    delay = min(INITIAL_RETRY_DELAY * 2.0**retries_taken, MAX_RETRY_DELAY)
    return delay * (1.0 - 0.25 * random.random())


def delay_after_error(
    options: RequestOptions, error: httpx.TransportError, *, retries_taken: int, max_retries: int
) -> float | None:
    """Seconds to wait before retrying after a connection error, or ``None`` to give up."""
    if retries_taken >= max_retries:
        return None
    if not (isinstance(error, _NEVER_SENT) or options.is_replay_safe):
        return None
    return backoff(retries_taken)


def delay_after_response(
    options: RequestOptions, response: httpx.Response, *, retries_taken: int, max_retries: int
) -> float | None:
    """Seconds to wait before retrying after an error response, or ``None`` to raise it."""
    if retries_taken >= max_retries:
        return None
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status == 409:
        # Surge's conflicts (email taken, key reused with another body) are final; only a conflict the
        # server calls temporary, with a Retry-After, is worth another try.
        if retry_after is None or not options.is_replay_safe:
            return None
    elif status >= 500 and status not in _NOT_ACTED_ON:
        if not options.is_replay_safe:
            return None
    elif status not in _NOT_ACTED_ON:
        return None
    if retry_after is not None and retry_after > MAX_RETRY_AFTER:
        return None
    if retry_after:
        return retry_after
    return backoff(retries_taken)
