"""Dependencies shared by every domain's routes: the process runtime and the authenticated user."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db import models as m
from backend.runtime import Runtime


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def provide_current_user(request: Request[m.User, Any, Any]) -> m.User:
    """The user the auth middleware loaded for this request's bearer token."""
    return request.user


SHARED_DEPENDENCIES = {
    "runtime": Provide(provide_runtime, sync_to_thread=False),
    "current_user": Provide(provide_current_user, sync_to_thread=False),
}


# Declared dependency annotations: Litestar 2.25 warns about dependencies it has to infer.
CurrentUser = NamedDependency[m.User]
DbSession = NamedDependency[AsyncSession]
RuntimeDep = NamedDependency[Runtime]
