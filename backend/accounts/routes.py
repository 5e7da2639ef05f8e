"""``/v1/auth`` and ``/v1/me``.

No ``from __future__ import annotations`` here: Litestar would resolve the string "Session" through its
signature namespace, where Advanced Alchemy registers SQLAlchemy's Session, not ours.
"""

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.datastructures import CacheControlHeader, ResponseHeader
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody
from litestar.response import Response

from backend.accounts.deps import Accounts, AuthLimits
from backend.accounts.export import export_account
from backend.accounts.schemas import (
    AccountExport,
    FirebaseSession,
    FirebaseSignIn,
    LoginRequest,
    RefreshRequest,
    Session,
    SignupRequest,
    User,
    UserUpdate,
)
from backend.accounts.service import IssuedTokens
from backend.admission.deps import Admission, ClientIp
from backend.db import models as m
from backend.deps import CurrentUser, DbSession
from backend.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    SignupsPaused,
    Unauthorized,
    UpstreamUnavailable,
    error_responses,
)

# Tokens and the account export are secrets: no cache (the browser's, a proxy's) may keep a copy, and no
# browser may sniff them into something it renders.
NO_STORE = CacheControlHeader(no_store=True)
NOSNIFF = [ResponseHeader(name="X-Content-Type-Options", value="nosniff", description="Never sniffed")]


def to_user(user: m.User) -> User:
    return User(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        tier=user.tier,  # type: ignore[arg-type]
        created_at=user.created_at,
    )


def to_session(issued: IssuedTokens) -> Session:
    return Session(
        user=to_user(issued.user),
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
    )


def to_firebase_session(issued: IssuedTokens, created: bool) -> FirebaseSession:
    return FirebaseSession(
        user=to_user(issued.user),
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
        created=created,
    )


FIREBASE_SIGN_IN = """Exchange a Firebase Auth ID token (Google, Apple or phone sign-in in the app's
Firebase SDK) for a Surge session. firebase-admin checks the token's signature against Google's keys,
its project (audience), issuer and expiry; anything else is `401 unauthorized`.

Accounts are linked by Firebase uid only: the first sign-in of a uid creates an account (`created: true`),
later ones log into it (`created: false`). The account's email is the token's when Firebase marks it
verified (Apple's private relay addresses are kept as given: they forward mail); phone sign-in has none, and
`email` is null. **If a password account already has that email, the answer is `409 conflict` and no
account is created or linked**: an account is never taken over because an email matches; its owner logs in
with the password instead. If the account holding the email is another Firebase identity's, the new account
is created without an email. While the overload policy has paused sign-ups, a first sign-in (which would
create an account) is `503 signups_paused`; existing accounts still sign in.

`404 not_found` when this server has no Firebase project configured (`SURGE_FIREBASE_PROJECT_ID`, or the
project of `SURGE_FCM_CREDENTIALS_FILE`)."""


class AuthController(Controller):
    """The public half of ``/v1/auth``: getting a session. (Logging out needs one: ``log_out``.)"""

    path = "/v1/auth"
    tags = ["Accounts"]

    @post(
        "/signup",
        cache_control=NO_STORE,
        response_headers=NOSNIFF,
        status_code=201,
        exclude_from_auth=True,
        summary="Create an account",
        description="`503 signups_paused` (with Retry-After) while the overload policy has closed sign-ups.",
        responses=error_responses(PayloadTooLarge, Conflict, RateLimited, SignupsPaused),
    )
    async def sign_up(
        self,
        data: JSONBody[SignupRequest],
        accounts: Accounts,
        admission: Admission,
        auth_limits: AuthLimits,
        client_ip: ClientIp,
    ) -> Session:
        await admission.admit_signup()
        await auth_limits.signup(client_ip)
        return to_session(await accounts.sign_up(data.email, data.password, data.display_name))

    @post(
        "/login",
        cache_control=NO_STORE,
        response_headers=NOSNIFF,
        status_code=200,
        exclude_from_auth=True,
        summary="Log in with email and password",
        responses=error_responses(PayloadTooLarge, Unauthorized, RateLimited),
    )
    async def log_in(
        self, data: JSONBody[LoginRequest], accounts: Accounts, auth_limits: AuthLimits, client_ip: ClientIp
    ) -> Session:
        await auth_limits.login(client_ip, data.email)
        return to_session(await accounts.log_in(data.email, data.password))

    @post(
        "/firebase",
        cache_control=NO_STORE,
        response_headers=NOSNIFF,
        status_code=200,
        exclude_from_auth=True,
        summary="Sign in with Firebase (Google, Apple, phone)",
        description=FIREBASE_SIGN_IN,
        responses=error_responses(
            PayloadTooLarge, Unauthorized, NotFound, Conflict, RateLimited, UpstreamUnavailable, SignupsPaused
        ),
    )
    async def firebase_sign_in(
        self,
        data: JSONBody[FirebaseSignIn],
        accounts: Accounts,
        admission: Admission,
        auth_limits: AuthLimits,
        client_ip: ClientIp,
    ) -> FirebaseSession:
        await auth_limits.firebase(client_ip)
        issued, created = await accounts.sign_in_with_firebase(
            data.id_token, before_create=admission.admit_signup
        )
        return to_firebase_session(issued, created)

    @post(
        "/refresh",
        cache_control=NO_STORE,
        response_headers=NOSNIFF,
        status_code=200,
        exclude_from_auth=True,
        summary="Exchange a refresh token for a new pair",
        responses=error_responses(PayloadTooLarge, Unauthorized, RateLimited),
    )
    async def refresh(
        self, data: JSONBody[RefreshRequest], accounts: Accounts, auth_limits: AuthLimits
    ) -> Session:
        family_id = await accounts.family_of(data.refresh_token)
        if family_id is not None:
            await auth_limits.refresh(family_id)
        return to_session(await accounts.refresh(data.refresh_token))


@post(
    "/v1/auth/logout",
    status_code=204,
    tags=["Accounts"],
    summary="Revoke this login's refresh tokens",
    responses=error_responses(PayloadTooLarge, Unauthorized),
)
async def log_out(data: JSONBody[RefreshRequest], accounts: Accounts, current_user: CurrentUser) -> None:
    await accounts.log_out(current_user, data.refresh_token)


class MeController(Controller):
    path = "/v1/me"
    tags = ["Accounts"]

    @get("/", summary="The signed-in user", responses=error_responses(Unauthorized))
    async def get_me(self, current_user: CurrentUser) -> User:
        return to_user(current_user)

    @patch("/", summary="Change the display name", responses=error_responses(PayloadTooLarge, Unauthorized))
    async def update_me(
        self, data: JSONBody[UserUpdate], accounts: Accounts, current_user: CurrentUser
    ) -> User:
        changes = {
            name: getattr(data, name)
            for name in data.__struct_fields__
            if getattr(data, name) is not msgspec.UNSET
        }
        return to_user(await accounts.update_profile(current_user.id, changes))

    @delete(
        "/",
        status_code=204,
        summary="Erase the account and everything it owns",
        responses=error_responses(Unauthorized),
    )
    async def delete_me(self, accounts: Accounts, current_user: CurrentUser) -> None:
        await accounts.delete_account(current_user.id)

    @get(
        "/export",
        cache_control=NO_STORE,
        response_headers=NOSNIFF,
        summary="Everything the account owns, as one JSON document",
        responses={
            **error_responses(Unauthorized),
            200: ResponseSpec(
                data_container=AccountExport, description="The document (also a download: surge-export.json)"
            ),
        },
    )
    async def export(self, db_session: DbSession, current_user: CurrentUser) -> Response[bytes]:
        document = await export_account(db_session, current_user)
        return Response(
            document,
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="surge-export.json"'},
        )
