"""What every domain's providers build on: the signed-in user, the request's database session, and
``singleton`` for the long-lived objects the composition root (``backend.app``) built once."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db import models as m
from backend.settings import Settings


def singleton(value: object) -> Provide:
    """A dependency built once for the life of the process (a pool, a limiter, a service)."""
    return Provide(lambda: value, use_cache=True, sync_to_thread=False)


def provide_current_user(request: Request[m.User, Any, Any]) -> m.User:
    """The user the auth middleware loaded for this request's bearer token."""
    return request.user


def shared_providers(settings: Settings) -> dict[str, Provide]:
    return {
        "settings": singleton(settings),
        "current_user": Provide(provide_current_user, sync_to_thread=False),
    }


# Declared dependency annotations: Litestar 2.25 warns about dependencies it has to infer.
CurrentUser = NamedDependency[m.User]
DbSession = NamedDependency[AsyncSession]
SettingsDep = NamedDependency[Settings]
