"""The API key domain's Litestar providers."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide

from backend.api_keys.keys import KeyHasher
from backend.api_keys.service import ApiKeyService
from backend.deps import DbSession, singleton


def provide_api_key_service(db_session: DbSession, key_hasher: NamedDependency[KeyHasher]) -> ApiKeyService:
    return ApiKeyService(db_session, key_hasher)


def api_key_providers(*, hasher: KeyHasher) -> dict[str, Provide]:
    return {
        "key_hasher": singleton(hasher),
        "api_keys": Provide(provide_api_key_service, sync_to_thread=False),
    }


ApiKeys = NamedDependency[ApiKeyService]
