"""Sessions: signing in stores the tokens, an expired access token is refreshed once (also when many calls
find it expired at the same time), and token stores keep the session across restarts."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time

import httpx
import pytest
from surge import (
    AsyncSurge,
    AuthenticationError,
    Credentials,
    FileTokenStore,
    MemoryTokenStore,
    RateLimitError,
    Surge,
    SurgeError,
)

from tests.sdk.fakes import USER, error_body, session_body

UNAUTHORIZED = {"error": {"code": "unauthorized", "message": "Expired.", "request_id": "r"}}


class FakeAccounts:
    """Accounts routes with rotating refresh tokens; ``/v1/me`` answers 401 to any token but the newest.

    ``race`` makes the first ``race`` requests carrying a stale token wait for each other before being
    refused, so that they are certainly in flight together."""

    def __init__(self, *, race: int = 0, refresh_delay: float = 0.0, expires_in: int = 900) -> None:
        self.generation = 0
        self.refreshes = 0
        self.requests: list[httpx.Request] = []
        self.race = threading.Barrier(race) if race else None
        self.refresh_delay = refresh_delay
        self.expires_in = expires_in
        self.refuse_refresh = False
        self.logged_out: list[str] = []
        self.expired: set[str] = set()

    def expire_access_token(self) -> None:
        """The access token's 15 minutes are over (the refresh token still works)."""
        self.expired.add(self.access_token)

    @property
    def access_token(self) -> str:
        return f"access-{self.generation}"

    @property
    def refresh_token(self) -> str:
        return f"refresh-{self.generation}"

    def _session(self) -> httpx.Response:
        return httpx.Response(200, json=session_body(self.access_token, self.refresh_token, self.expires_in))

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        body = json.loads(request.content) if request.content else {}
        if path in ("/v1/auth/login", "/v1/auth/signup"):
            self.generation += 1
            return self._session()
        if path == "/v1/auth/firebase":
            self.generation += 1
            return httpx.Response(
                200, json={**session_body(self.access_token, self.refresh_token), "created": True}
            )
        if path == "/v1/auth/refresh":
            assert "authorization" not in request.headers, "refresh is public: no bearer token"
            self.refreshes += 1
            time.sleep(self.refresh_delay)
            if self.refuse_refresh or body["refresh_token"] != self.refresh_token:
                return httpx.Response(401, json=UNAUTHORIZED)
            self.generation += 1
            return self._session()
        if (
            request.headers.get("authorization") != f"Bearer {self.access_token}"
            or self.access_token in self.expired
        ):
            if self.race is not None:
                self.race.wait(timeout=5)
            return httpx.Response(401, json=UNAUTHORIZED)
        if path == "/v1/auth/logout":
            self.logged_out.append(body["refresh_token"])
            return httpx.Response(204)
        if path == "/v1/me" and request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(200, json=USER)


def sync_client(fake: FakeAccounts, **options) -> Surge:
    return Surge(
        base_url="http://surge.test",
        http_client=httpx.Client(transport=httpx.MockTransport(fake.handler)),
        **options,
    )


def signed_in_store(fake: FakeAccounts, *, expires_at: float | None = None) -> MemoryTokenStore:
    """A stored session whose access token the server no longer takes (the refresh token still works)."""
    fake.generation = 1
    return MemoryTokenStore(
        Credentials(access_token="access-0", refresh_token=fake.refresh_token, expires_at=expires_at)
    )


def test_logging_in_stores_the_session_for_the_calls_that_follow():
    fake = FakeAccounts()
    store = MemoryTokenStore()
    with sync_client(fake, token_store=store) as client:
        session = client.auth.log_in("ada@example.com", "correct horse")
        assert client.me.get().email == "ada@example.com"
    assert session.access_token == "access-1" and "access-1" not in repr(session)
    saved = store.load()
    assert saved is not None and saved.access_token == "access-1" and saved.refresh_token == "refresh-1"
    assert saved.user_id == "user-1" and saved.expires_at == pytest.approx(time.time() + 900, abs=5)
    assert "authorization" not in fake.requests[0].headers


def test_an_expired_access_token_is_refreshed_once_and_the_call_repeated():
    fake = FakeAccounts()
    store = signed_in_store(fake)
    with sync_client(fake, token_store=store) as client:
        assert client.me.get().id == "user-1"
    assert fake.refreshes == 1
    assert [request.url.path for request in fake.requests] == ["/v1/me", "/v1/auth/refresh", "/v1/me"]
    assert fake.requests[-1].headers["authorization"] == "Bearer access-2"
    saved = store.load()
    assert saved is not None and saved.refresh_token == "refresh-2", "the rotated refresh token is kept"


def test_a_second_401_after_refreshing_is_the_callers_error():
    fake = FakeAccounts()
    store = signed_in_store(fake)

    def always_401(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/me":
            fake.requests.append(request)
            return httpx.Response(401, json=UNAUTHORIZED)
        return fake.handler(request)

    with (
        Surge(
            base_url="http://surge.test",
            token_store=store,
            http_client=httpx.Client(transport=httpx.MockTransport(always_401)),
        ) as client,
        pytest.raises(AuthenticationError),
    ):
        client.me.get()
    assert fake.refreshes == 1


def test_a_refused_refresh_signs_the_client_out():
    fake = FakeAccounts()
    store = signed_in_store(fake)
    fake.refuse_refresh = True
    with sync_client(fake, token_store=store) as client:
        with pytest.raises(AuthenticationError):
            client.me.get()
        assert store.load() is None and client.tokens.credentials is None
        with pytest.raises(AuthenticationError):
            client.me.get()
    assert "authorization" not in fake.requests[-1].headers
    assert fake.refreshes == 1


def test_two_threads_finding_the_token_expired_together_share_one_refresh():
    fake = FakeAccounts(race=2, refresh_delay=0.05)
    store = signed_in_store(fake)
    results: list[str] = []
    errors: list[BaseException] = []
    with sync_client(fake, token_store=store) as client:

        def call() -> None:
            try:
                results.append(client.me.get().id)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=call) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert errors == [] and results == ["user-1", "user-1"]
    assert fake.refreshes == 1
    stale = [r for r in fake.requests if r.headers.get("authorization") == "Bearer access-0"]
    assert len(stale) == 2, "both calls went out with the old token before either refreshed"


async def test_two_tasks_finding_the_token_expired_together_share_one_refresh():
    fake = FakeAccounts()
    store = signed_in_store(fake)
    barrier = asyncio.Barrier(2)

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/me" and request.headers["authorization"] == "Bearer access-0":
            fake.requests.append(request)
            await barrier.wait()
            return httpx.Response(401, json=UNAUTHORIZED)
        if request.url.path == "/v1/auth/refresh":
            await asyncio.sleep(0.05)
        return fake.handler(request)

    async with AsyncSurge(
        base_url="http://surge.test",
        token_store=store,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    ) as client:
        users = await asyncio.gather(client.me.get(), client.me.get())
    assert [user.id for user in users] == ["user-1", "user-1"]
    assert fake.refreshes == 1


def test_a_token_about_to_expire_is_refreshed_before_the_call_once_for_concurrent_callers():
    fake = FakeAccounts(refresh_delay=0.05)
    fake.generation = 1
    store = MemoryTokenStore(
        Credentials(access_token="access-1", refresh_token="refresh-1", expires_at=time.time() + 10)
    )
    with sync_client(fake, token_store=store) as client:
        threads = [threading.Thread(target=client.me.get) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert fake.refreshes == 1
    me_calls = [r for r in fake.requests if r.url.path == "/v1/me"]
    assert [r.headers["authorization"] for r in me_calls] == ["Bearer access-2"] * 3, "no call went out stale"


async def test_async_token_about_to_expire_is_refreshed_before_the_call():
    fake = FakeAccounts()
    fake.generation = 1
    store = MemoryTokenStore(
        Credentials(access_token="access-1", refresh_token="refresh-1", expires_at=time.time())
    )
    async with AsyncSurge(
        base_url="http://surge.test",
        token_store=store,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)),
    ) as client:
        await asyncio.gather(*(client.me.get() for _ in range(3)))
    assert fake.refreshes == 1


def test_a_refresh_that_cannot_reach_the_server_uses_the_token_that_still_works(sleeps):
    fake = FakeAccounts()
    fake.generation = 1
    store = MemoryTokenStore(
        Credentials(access_token="access-1", refresh_token="refresh-1", expires_at=time.time() + 5)
    )

    def offline_refresh(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/auth/refresh":
            fake.refreshes += 1
            raise httpx.ReadError("lost", request=request)
        return fake.handler(request)

    with Surge(
        base_url="http://surge.test",
        token_store=store,
        http_client=httpx.Client(transport=httpx.MockTransport(offline_refresh)),
    ) as client:
        assert client.me.get().id == "user-1"
    assert fake.refreshes == 1, "a refresh is never replayed: a second one would spend a spent token"


def test_explicit_refresh_log_out_and_account_deletion():
    fake = FakeAccounts()
    store = MemoryTokenStore()
    with sync_client(fake, token_store=store) as client:
        with pytest.raises(SurgeError, match="Not signed in"):
            client.auth.refresh()
        client.auth.sign_up("ada@example.com", "correct horse", display_name="Ada")
        assert json.loads(fake.requests[-1].content) == {
            "email": "ada@example.com",
            "password": "correct horse",
            "display_name": "Ada",
        }
        assert client.auth.refresh().refresh_token == "refresh-2"
        client.auth.log_out()
        assert fake.logged_out == ["refresh-2"] and store.load() is None
        client.auth.log_in("ada@example.com", "correct horse")
        client.me.delete()
        assert store.load() is None


def test_firebase_sign_in_says_whether_the_account_is_new():
    fake = FakeAccounts()
    with sync_client(fake) as client:
        session = client.auth.log_in_with_firebase("firebase-id-token")
        assert session.created is True
        assert json.loads(fake.requests[-1].content) == {"id_token": "firebase-id-token"}
        assert client.tokens.access_token == "access-1"


def test_with_options_copies_share_the_session():
    fake = FakeAccounts()
    with sync_client(fake) as client:
        client.auth.log_in("ada@example.com", "correct horse")
        patient = client.with_options(timeout=120)
        fake.expire_access_token()  # the copy refreshes it, for both
        patient.me.get()
        client.me.get()
    assert fake.refreshes == 1


def test_a_client_can_start_from_a_session_obtained_elsewhere():
    fake = FakeAccounts()
    fake.generation = 3
    with sync_client(fake, access_token="access-3") as client:
        assert client.me.get().id == "user-1"
        fake.generation = 4
        with pytest.raises(AuthenticationError):
            client.me.get()  # no refresh token: nothing to refresh with


def test_file_token_store_keeps_the_session_private_and_across_restarts(tmp_path):
    path = tmp_path / "nested" / "session.json"
    store = FileTokenStore(path)
    assert store.load() is None
    credentials = Credentials(access_token="a", refresh_token="r", expires_at=123.5, user_id="u")
    store.save(credentials)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert FileTokenStore(path).load() == credentials
    assert [entry.name for entry in path.parent.iterdir()] == ["session.json"], "no temporary file left"
    path.write_text("{not json")
    assert store.load() is None
    store.clear()
    store.clear()
    assert not path.exists()


def test_a_file_store_signs_in_the_next_run(tmp_path):
    fake = FakeAccounts()
    path = tmp_path / "session.json"
    with sync_client(fake, token_store=FileTokenStore(path)) as client:
        client.auth.log_in("ada@example.com", "correct horse")
    with sync_client(fake, token_store=FileTokenStore(path)) as client:
        assert client.me.get().id == "user-1"
        fake.expire_access_token()
        client.me.get()  # refreshed; the new tokens are written back
    saved = FileTokenStore(path).load()
    assert saved is not None and saved.refresh_token == fake.refresh_token


def test_error_bodies_of_refresh_keep_their_code():
    fake = FakeAccounts()

    def rate_limited_refresh(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/auth/refresh":
            return httpx.Response(
                429, json=error_body("rate_limited", retry_after_s=600), headers={"retry-after": "600"}
            )
        return fake.handler(request)

    with Surge(
        base_url="http://surge.test",
        access_token="x",
        refresh_token="y",
        http_client=httpx.Client(transport=httpx.MockTransport(rate_limited_refresh)),
    ) as client:
        with pytest.raises(RateLimitError) as raised:
            client.auth.refresh()
        credentials = client.tokens.credentials
    assert raised.value.code == "rate_limited" and raised.value.retry_after == 600
    assert credentials is not None and credentials.refresh_token == "y", "refused for now: still signed in"
