"""The request loop both clients share: headers, retries, automatic token refresh, error mapping.

``SyncAPIClient`` and ``AsyncAPIClient`` are the same algorithm written twice (once with ``await``);
everything that does not do I/O lives in ``BaseClient``.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
import msgspec

from surge import _retry
from surge._auth import Credentials, MemoryTokenStore, SessionTokens, TokenStore
from surge._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    SurgeError,
    status_error,
)
from surge._options import (
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
    NOT_GIVEN,
    NotGiven,
    RequestOptions,
    Timeout,
)
from surge._pagination import AsyncCursorPage, SyncCursorPage, WirePage
from surge._types import Session
from surge._version import __version__

T = TypeVar("T")

_WEBSOCKET = RequestOptions(method="GET", path="/v1/ws")


class BaseClient:
    """Configuration and request building, shared by the sync and async clients."""

    base_url: httpx.URL
    timeout: Timeout
    max_retries: int
    max_stream_resumes: int

    def __init__(
        self,
        *,
        base_url: str | httpx.URL | None,
        access_token: str | None,
        refresh_token: str | None,
        token_store: TokenStore | None,
        timeout: Timeout | NotGiven,
        max_retries: int,
        max_stream_resumes: int,
        default_headers: Mapping[str, str] | None,
    ) -> None:
        url = base_url or os.environ.get("SURGE_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = httpx.URL(str(url).rstrip("/") + "/")
        self.timeout = DEFAULT_TIMEOUT if isinstance(timeout, NotGiven) else timeout
        self.max_retries = max_retries
        self.max_stream_resumes = max_stream_resumes
        self._custom_headers = dict(default_headers or {})
        self._tokens = SessionTokens(token_store or MemoryTokenStore())
        if access_token is not None:
            self._tokens.set(Credentials(access_token=access_token, refresh_token=refresh_token))

    def _copy_from(self, other: BaseClient, **overrides: Any) -> None:
        """Make this client a ``with_options`` copy of ``other``: same connection pool, same session."""
        self.base_url = other.base_url
        self.timeout = overrides.get("timeout", other.timeout)
        self.max_retries = overrides.get("max_retries", other.max_retries)
        self.max_stream_resumes = overrides.get("max_stream_resumes", other.max_stream_resumes)
        self._custom_headers = {**other._custom_headers, **(overrides.get("default_headers") or {})}
        self._tokens = other._tokens

    @property
    def tokens(self) -> SessionTokens:
        """The session this client signs its requests with."""
        return self._tokens

    @property
    def user_agent(self) -> str:
        return f"surge-sdk/{__version__} python/{platform.python_version()}"

    def _build_request(
        self, http: httpx.Client | httpx.AsyncClient, options: RequestOptions, token: str | None
    ) -> httpx.Request:
        headers: dict[str, str] = {"Accept": "application/json", "User-Agent": self.user_agent}
        headers.update(self._custom_headers)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if options.idempotency_key is not None:
            headers["Idempotency-Key"] = options.idempotency_key
        content = None
        if options.body is not None:
            content = msgspec.json.encode(options.body)
            headers["Content-Type"] = "application/json"
        headers.update(options.headers or {})
        params = {
            name: _query_value(value) for name, value in (options.params or {}).items() if value is not None
        }
        timeout = self.timeout if isinstance(options.timeout, NotGiven) else options.timeout
        return http.build_request(
            options.method,
            self.base_url.join(options.path.lstrip("/")),
            params=params,
            content=content,
            headers=headers,
            timeout=timeout,
        )

    def _should_refresh_on_401(
        self, options: RequestOptions, sent_token: str | None, refreshed: bool
    ) -> bool:
        return (
            options.authenticated and sent_token is not None and not refreshed and self._tokens.can_refresh()
        )

    @staticmethod
    def _refresh_options(refresh_token: str) -> RequestOptions:
        # Not replay-safe: a refresh the server performed spends the token, so resending it would look like
        # token theft (and revoke the whole login). It is retried only when it never reached the server.
        return RequestOptions(
            method="POST",
            path="/v1/auth/refresh",
            body={"refresh_token": refresh_token},
            authenticated=False,
            replay_safe=False,
        )


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _connection_error(error: httpx.TransportError, request: httpx.Request) -> APIConnectionError:
    if isinstance(error, httpx.TimeoutException):
        return APITimeoutError(request=request)
    return APIConnectionError(
        request=request, message=f"Connection error: {error!s}" if str(error) else "Connection error."
    )


def decode(response: httpx.Response, type_: type[T]) -> T:
    """A successful response's JSON body as ``type_``; a body that does not match is an ``APIError``."""
    try:
        return msgspec.json.decode(response.content, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise APIError(
            f"Unexpected response from {response.request.url.path}: {exc}", request=response.request
        ) from exc


class SyncAPIClient(BaseClient):
    _http: httpx.Client

    def request(self, options: RequestOptions, *, stream: bool = False) -> httpx.Response:
        """Send ``options`` with retries and token refresh; the response of the last attempt, read (or open
        for reading when ``stream``; then the caller closes it). An error status raises."""
        retries_taken = 0
        refreshed = False
        while True:
            sent_token = self._token_before_sending(options)
            request = self._build_request(self._http, options, sent_token)
            response: httpx.Response | None = None
            try:
                response = self._http.send(request, stream=True)
                if not stream or response.is_error:
                    response.read()
            except httpx.TransportError as exc:
                if response is not None:
                    response.close()
                delay = _retry.delay_after_error(
                    options, exc, retries_taken=retries_taken, max_retries=self.max_retries
                )
                if delay is None:
                    raise _connection_error(exc, request) from exc
                retries_taken += 1
                _retry.sleep(delay)
                continue
            if response.status_code == 401 and self._should_refresh_on_401(options, sent_token, refreshed):
                response.close()
                refreshed = True
                self.refresh_session(stale_token=sent_token)
                continue
            if response.is_error and response.status_code not in options.ok_statuses:
                delay = _retry.delay_after_response(
                    options, response, retries_taken=retries_taken, max_retries=self.max_retries
                )
                if delay is None:
                    raise status_error(response)
                retries_taken += 1
                _retry.sleep(delay)
                continue
            return response

    def request_json(self, options: RequestOptions, type_: type[T]) -> T:
        return decode(self.request(options), type_)

    def request_none(self, options: RequestOptions) -> None:
        self.request(options)

    def request_page(
        self, options: RequestOptions, item: type[T], fetch: Callable[[str], SyncCursorPage[T]]
    ) -> SyncCursorPage[T]:
        page: WirePage[T] = decode(self.request(options), WirePage[item])  # type: ignore[valid-type]
        return SyncCursorPage(data=page.data, next_cursor=page.next_cursor, fetch=fetch)

    def access_token_for_connection(self) -> str:
        """A valid access token for a WebSocket's auth frame (refreshed first if about to expire)."""
        token = self._token_before_sending(_WEBSOCKET)
        if token is None:
            raise SurgeError("Not signed in: sign in before opening a realtime session.")
        return token

    def _token_before_sending(self, options: RequestOptions) -> str | None:
        if options.authenticated and self._tokens.needs_refresh():
            try:
                self.refresh_session(stale_token=self._tokens.access_token)
            except APIError as exc:
                if isinstance(exc, AuthenticationError):
                    raise
                # The access token still has a few seconds to live: use it, refresh on a later call.
        return self._tokens.access_token if options.authenticated else None

    def refresh_session(self, *, stale_token: str | None) -> Session | None:
        """Exchange the refresh token for a new pair, once for everyone holding ``stale_token``.

        Callers that find the token expired at the same time all pass the same stale token; the first one
        refreshes, the others see the new token when they get the lock and return at once. ``None`` when
        someone else did the refresh. A refresh the server refuses signs the client out.
        """
        with self._tokens.thread_lock:
            credentials = self._tokens.credentials
            if credentials is None or credentials.refresh_token is None:
                raise SurgeError("Not signed in: there is no refresh token to refresh the session with.")
            if stale_token is not None and credentials.access_token != stale_token:
                return None
            try:
                session = self.request_json(self._refresh_options(credentials.refresh_token), Session)
            except APIStatusError as exc:
                if isinstance(exc, AuthenticationError):
                    self._tokens.clear()
                raise
            self._tokens.set_session(session)
            return session


class AsyncAPIClient(BaseClient):
    _http: httpx.AsyncClient

    async def request(self, options: RequestOptions, *, stream: bool = False) -> httpx.Response:
        """Send ``options`` with retries and token refresh; the response of the last attempt, read (or open
        for reading when ``stream``; then the caller closes it). An error status raises."""
        retries_taken = 0
        refreshed = False
        while True:
            sent_token = await self._token_before_sending(options)
            request = self._build_request(self._http, options, sent_token)
            response: httpx.Response | None = None
            try:
                response = await self._http.send(request, stream=True)
                if not stream or response.is_error:
                    await response.aread()
            except httpx.TransportError as exc:
                if response is not None:
                    await response.aclose()
                delay = _retry.delay_after_error(
                    options, exc, retries_taken=retries_taken, max_retries=self.max_retries
                )
                if delay is None:
                    raise _connection_error(exc, request) from exc
                retries_taken += 1
                await _retry.async_sleep(delay)
                continue
            if response.status_code == 401 and self._should_refresh_on_401(options, sent_token, refreshed):
                await response.aclose()
                refreshed = True
                await self.refresh_session(stale_token=sent_token)
                continue
            if response.is_error and response.status_code not in options.ok_statuses:
                delay = _retry.delay_after_response(
                    options, response, retries_taken=retries_taken, max_retries=self.max_retries
                )
                if delay is None:
                    raise status_error(response)
                retries_taken += 1
                await _retry.async_sleep(delay)
                continue
            return response

    async def request_json(self, options: RequestOptions, type_: type[T]) -> T:
        return decode(await self.request(options), type_)

    async def request_none(self, options: RequestOptions) -> None:
        await self.request(options)

    async def request_page(
        self, options: RequestOptions, item: type[T], fetch: Callable[[str], Awaitable[AsyncCursorPage[T]]]
    ) -> AsyncCursorPage[T]:
        page: WirePage[T] = decode(await self.request(options), WirePage[item])  # type: ignore[valid-type]
        return AsyncCursorPage(data=page.data, next_cursor=page.next_cursor, fetch=fetch)

    async def access_token_for_connection(self) -> str:
        """A valid access token for a WebSocket's auth frame (refreshed first if about to expire)."""
        token = await self._token_before_sending(_WEBSOCKET)
        if token is None:
            raise SurgeError("Not signed in: sign in before opening a realtime session.")
        return token

    async def _token_before_sending(self, options: RequestOptions) -> str | None:
        if options.authenticated and self._tokens.needs_refresh():
            try:
                await self.refresh_session(stale_token=self._tokens.access_token)
            except APIError as exc:
                if isinstance(exc, AuthenticationError):
                    raise
        return self._tokens.access_token if options.authenticated else None

    async def refresh_session(self, *, stale_token: str | None) -> Session | None:
        """Exchange the refresh token for a new pair, once for everyone holding ``stale_token`` (see the
        sync client)."""
        async with self._tokens.async_lock:
            credentials = self._tokens.credentials
            if credentials is None or credentials.refresh_token is None:
                raise SurgeError("Not signed in: there is no refresh token to refresh the session with.")
            if stale_token is not None and credentials.access_token != stale_token:
                return None
            try:
                session = await self.request_json(self._refresh_options(credentials.refresh_token), Session)
            except APIStatusError as exc:
                if isinstance(exc, AuthenticationError):
                    self._tokens.clear()
                raise
            self._tokens.set_session(session)
            return session


__all__ = ["NOT_GIVEN", "AsyncAPIClient", "BaseClient", "SyncAPIClient"]
