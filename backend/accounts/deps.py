"""The accounts domain's Litestar providers: the account service of a request, the sign-in limits, and
what checks tokens."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide

from backend.accounts.auth import Authenticator
from backend.accounts.firebase import FirebaseAuth
from backend.accounts.limits import AuthRateLimits
from backend.accounts.passwords import Passwords
from backend.accounts.service import AccountService
from backend.accounts.tokens import AccessTokens
from backend.deps import DbSession, SettingsDep, singleton


def provide_account_service(
    db_session: DbSession,
    settings: SettingsDep,
    passwords: NamedDependency[Passwords],
    access_tokens: NamedDependency[AccessTokens],
    firebase_auth: NamedDependency[FirebaseAuth | None],
) -> AccountService:
    return AccountService(
        db_session,
        settings=settings.auth,
        passwords=passwords,
        access_tokens=access_tokens,
        firebase=firebase_auth,
    )


def account_providers(
    *,
    passwords: Passwords,
    access_tokens: AccessTokens,
    authenticator: Authenticator,
    firebase_auth: FirebaseAuth | None,
    auth_limits: AuthRateLimits,
) -> dict[str, Provide]:
    return {
        "accounts": Provide(provide_account_service, sync_to_thread=False),
        "passwords": singleton(passwords),
        "access_tokens": singleton(access_tokens),
        "authenticator": singleton(authenticator),
        "firebase_auth": singleton(firebase_auth),
        "auth_limits": singleton(auth_limits),
    }


Accounts = NamedDependency[AccountService]
AuthLimits = NamedDependency[AuthRateLimits]
