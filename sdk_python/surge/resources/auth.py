"""``client.auth``: sign up, log in (email and password, or a Firebase ID token), refresh, log out."""

from __future__ import annotations

from collections.abc import Mapping

from surge._options import NOT_GIVEN, NotGiven, RequestOptions, Timeout, given
from surge._resource import AsyncAPIResource, SyncAPIResource
from surge._types import FirebaseSession, Session

__all__ = ["AsyncAuth", "Auth"]


def _sign_up(
    email: str,
    password: str,
    display_name: str | None,
    timeout: Timeout | NotGiven,
    extra_headers: Mapping[str, str] | None,
) -> RequestOptions:
    body = given(
        email=email, password=password, display_name=NOT_GIVEN if display_name is None else display_name
    )
    # Not replay-safe: a sign-up the server performed would come back as 409 "email taken".
    return RequestOptions(
        method="POST",
        path="/v1/auth/signup",
        body=body,
        authenticated=False,
        replay_safe=False,
        timeout=timeout,
        headers=extra_headers,
    )


def _log_in(
    email: str, password: str, timeout: Timeout | NotGiven, extra_headers: Mapping[str, str] | None
) -> RequestOptions:
    # A repeated login only starts a second, unused login: safe to replay.
    return RequestOptions(
        method="POST",
        path="/v1/auth/login",
        body={"email": email, "password": password},
        authenticated=False,
        replay_safe=True,
        timeout=timeout,
        headers=extra_headers,
    )


def _firebase(
    id_token: str, timeout: Timeout | NotGiven, extra_headers: Mapping[str, str] | None
) -> RequestOptions:
    # Not replay-safe: a replay would answer created=false for an account the first attempt created.
    return RequestOptions(
        method="POST",
        path="/v1/auth/firebase",
        body={"id_token": id_token},
        authenticated=False,
        replay_safe=False,
        timeout=timeout,
        headers=extra_headers,
    )


def _log_out(
    refresh_token: str, timeout: Timeout | NotGiven, extra_headers: Mapping[str, str] | None
) -> RequestOptions:
    return RequestOptions(
        method="POST",
        path="/v1/auth/logout",
        body={"refresh_token": refresh_token},
        replay_safe=True,
        timeout=timeout,
        headers=extra_headers,
    )


class Auth(SyncAPIResource):
    """Every method that signs in stores the new session in the client's token store, so the calls that
    follow are authenticated."""

    def sign_up(
        self,
        email: str,
        password: str,
        *,
        display_name: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Session:
        """Create an account (``POST /v1/auth/signup``); ``ConflictError`` if the email is taken,
        ``SignupsPausedError`` while sign-ups are closed."""
        session = self._client.request_json(
            _sign_up(email, password, display_name, timeout, extra_headers), Session
        )
        self._client.tokens.set_session(session)
        return session

    def log_in(
        self,
        email: str,
        password: str,
        *,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Session:
        """Log in with email and password (``POST /v1/auth/login``); ``AuthenticationError`` if either is
        wrong."""
        session = self._client.request_json(_log_in(email, password, timeout, extra_headers), Session)
        self._client.tokens.set_session(session)
        return session

    def log_in_with_firebase(
        self,
        id_token: str,
        *,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> FirebaseSession:
        """Sign in with a Firebase Auth ID token from the device (Google, Apple, phone); ``created`` says
        whether this made a new account."""
        session = self._client.request_json(_firebase(id_token, timeout, extra_headers), FirebaseSession)
        self._client.tokens.set_session(session)
        return session

    def refresh(self) -> Session:
        """Exchange the refresh token for a new pair now (the client also does this by itself)."""
        session = self._client.refresh_session(stale_token=None)
        assert session is not None
        return session

    def log_out(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Mapping[str, str] | None = None
    ) -> None:
        """Revoke this login on the server and forget the session (also when the server cannot be told)."""
        tokens = self._client.tokens
        try:
            if tokens.credentials is not None and tokens.credentials.refresh_token is not None:
                self._client.request_none(_log_out(tokens.credentials.refresh_token, timeout, extra_headers))
        finally:
            tokens.clear()


class AsyncAuth(AsyncAPIResource):
    """Every method that signs in stores the new session in the client's token store."""

    async def sign_up(
        self,
        email: str,
        password: str,
        *,
        display_name: str | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Session:
        """Create an account (``POST /v1/auth/signup``)."""
        session = await self._client.request_json(
            _sign_up(email, password, display_name, timeout, extra_headers), Session
        )
        self._client.tokens.set_session(session)
        return session

    async def log_in(
        self,
        email: str,
        password: str,
        *,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Session:
        """Log in with email and password (``POST /v1/auth/login``)."""
        session = await self._client.request_json(_log_in(email, password, timeout, extra_headers), Session)
        self._client.tokens.set_session(session)
        return session

    async def log_in_with_firebase(
        self,
        id_token: str,
        *,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> FirebaseSession:
        """Sign in with a Firebase Auth ID token from the device."""
        session = await self._client.request_json(
            _firebase(id_token, timeout, extra_headers), FirebaseSession
        )
        self._client.tokens.set_session(session)
        return session

    async def refresh(self) -> Session:
        """Exchange the refresh token for a new pair now (the client also does this by itself)."""
        session = await self._client.refresh_session(stale_token=None)
        assert session is not None
        return session

    async def log_out(
        self, *, timeout: Timeout | NotGiven = NOT_GIVEN, extra_headers: Mapping[str, str] | None = None
    ) -> None:
        """Revoke this login on the server and forget the session (also when the server cannot be told)."""
        tokens = self._client.tokens
        try:
            if tokens.credentials is not None and tokens.credentials.refresh_token is not None:
                await self._client.request_none(
                    _log_out(tokens.credentials.refresh_token, timeout, extra_headers)
                )
        finally:
            tokens.clear()
