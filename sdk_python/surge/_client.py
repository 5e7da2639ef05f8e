"""``Surge`` and ``AsyncSurge``: the clients, each with its resources as attributes."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

import httpx

from surge._auth import TokenStore
from surge._base_client import AsyncAPIClient, SyncAPIClient
from surge._options import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_STREAM_RESUMES,
    NOT_GIVEN,
    NotGiven,
    Timeout,
)
from surge._realtime import AsyncRealtimeSession, RealtimeSession
from surge.resources import (
    Admin,
    ApiKeys,
    AsyncAdmin,
    AsyncApiKeys,
    AsyncAuth,
    AsyncConversations,
    AsyncDevices,
    AsyncHealthChecks,
    AsyncMe,
    AsyncMessages,
    AsyncModels,
    Auth,
    Conversations,
    Devices,
    HealthChecks,
    Me,
    Messages,
    Models,
)

__all__ = ["AsyncSurge", "Surge"]


class Surge(SyncAPIClient):
    """The synchronous client.

    ```py
    from surge import Surge

    client = Surge(base_url="http://127.0.0.1:8000")
    client.auth.log_in("ada@example.com", "correct horse battery")
    for conversation in client.conversations.list():
        print(conversation.title)
    ```

    ``base_url`` defaults to ``$SURGE_BASE_URL``, else ``http://127.0.0.1:8000``. Pass ``access_token``
    (and ``refresh_token``) to use a session obtained elsewhere, or a ``token_store`` that remembers the
    session between runs. ``timeout`` applies to every request (per call too: ``timeout=``), and failed
    requests are retried ``max_retries`` times; a stream reconnects up to ``max_stream_resumes`` times in
    a row without receiving anything new before giving up.
    """

    auth: Auth
    me: Me
    devices: Devices
    api_keys: ApiKeys
    models: Models
    conversations: Conversations
    messages: Messages
    health: HealthChecks
    admin: Admin

    def __init__(
        self,
        *,
        base_url: str | httpx.URL | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        token_store: TokenStore | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_stream_resumes: int = DEFAULT_MAX_STREAM_RESUMES,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url,
            access_token=access_token,
            refresh_token=refresh_token,
            token_store=token_store,
            timeout=timeout,
            max_retries=max_retries,
            max_stream_resumes=max_stream_resumes,
            default_headers=default_headers,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=self.timeout, follow_redirects=False)
        self._add_resources()

    def _add_resources(self) -> None:
        self.auth = Auth(self)
        self.me = Me(self)
        self.devices = Devices(self)
        self.api_keys = ApiKeys(self)
        self.models = Models(self)
        self.conversations = Conversations(self)
        self.messages = Messages(self)
        self.health = HealthChecks(self)
        self.admin = Admin(self)

    def with_options(
        self,
        *,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        max_retries: int | None = None,
        max_stream_resumes: int | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> Surge:
        """A copy with other defaults that shares this client's connections and session.

        ```py
        client.with_options(max_retries=5, timeout=120).messages.send(conversation_id, "Hi")
        ```
        """
        copy = Surge.__new__(Surge)
        copy._copy_from(self, **_overrides(timeout, max_retries, max_stream_resumes, default_headers))
        copy._http = self._http
        copy._owns_http = False
        copy._add_resources()
        return copy

    def realtime(self, *, url: str | None = None) -> RealtimeSession:
        """A WebSocket session multiplexing turns (``GET /v1/ws``); use it as a context manager."""
        return RealtimeSession(self, url=url)

    def close(self) -> None:
        """Close the connection pool (unless it was passed in as ``http_client``)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Surge:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncSurge(AsyncAPIClient):
    """The asyncio client: the same resources as ``Surge``, with ``await``.

    ```py
    from surge import AsyncSurge

    async with AsyncSurge(base_url="http://127.0.0.1:8000") as client:
        await client.auth.log_in("ada@example.com", "correct horse battery")
        async for conversation in client.conversations.list():
            print(conversation.title)
    ```
    """

    auth: AsyncAuth
    me: AsyncMe
    devices: AsyncDevices
    api_keys: AsyncApiKeys
    models: AsyncModels
    conversations: AsyncConversations
    messages: AsyncMessages
    health: AsyncHealthChecks
    admin: AsyncAdmin

    def __init__(
        self,
        *,
        base_url: str | httpx.URL | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        token_store: TokenStore | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_stream_resumes: int = DEFAULT_MAX_STREAM_RESUMES,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url,
            access_token=access_token,
            refresh_token=refresh_token,
            token_store=token_store,
            timeout=timeout,
            max_retries=max_retries,
            max_stream_resumes=max_stream_resumes,
            default_headers=default_headers,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        self._add_resources()

    def _add_resources(self) -> None:
        self.auth = AsyncAuth(self)
        self.me = AsyncMe(self)
        self.devices = AsyncDevices(self)
        self.api_keys = AsyncApiKeys(self)
        self.models = AsyncModels(self)
        self.conversations = AsyncConversations(self)
        self.messages = AsyncMessages(self)
        self.health = AsyncHealthChecks(self)
        self.admin = AsyncAdmin(self)

    def with_options(
        self,
        *,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        max_retries: int | None = None,
        max_stream_resumes: int | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> AsyncSurge:
        """A copy with other defaults that shares this client's connections and session."""
        copy = AsyncSurge.__new__(AsyncSurge)
        copy._copy_from(self, **_overrides(timeout, max_retries, max_stream_resumes, default_headers))
        copy._http = self._http
        copy._owns_http = False
        copy._add_resources()
        return copy

    def realtime(self, *, url: str | None = None) -> AsyncRealtimeSession:
        """A WebSocket session multiplexing turns (``GET /v1/ws``); use it as an async context manager."""
        return AsyncRealtimeSession(self, url=url)

    async def close(self) -> None:
        """Close the connection pool (unless it was passed in as ``http_client``)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncSurge:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _overrides(
    timeout: Timeout | NotGiven,
    max_retries: int | None,
    max_stream_resumes: int | None,
    default_headers: Mapping[str, str] | None,
) -> dict[str, object]:
    overrides: dict[str, object] = {}
    if not isinstance(timeout, NotGiven):
        overrides["timeout"] = timeout
    if max_retries is not None:
        overrides["max_retries"] = max_retries
    if max_stream_resumes is not None:
        overrides["max_stream_resumes"] = max_stream_resumes
    if default_headers is not None:
        overrides["default_headers"] = default_headers
    return overrides
