"""``/v1/me/api_keys``: the signed-in user's keys for the OpenAI-compatible API (an access token is needed:
a key cannot make or list keys)."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody

from backend.api_keys.deps import ApiKeys
from backend.api_keys.schemas import ApiKeyList, CreatedApiKey, NewApiKey
from backend.deps import CurrentUser
from backend.errors import NotFound, PayloadTooLarge, Unauthorized, error_responses


class ApiKeyController(Controller):
    path = "/v1/me/api_keys"
    tags = ["API keys"]

    @post(
        "/",
        status_code=201,
        summary="Make an API key for the OpenAI-compatible API",
        description=(
            "The answer carries the key's `secret` (`sk-surge-…`), shown only here: Surge keeps a keyed hash "
            "of it. Use it as the bearer token of `/openai/v1/*`."
        ),
        responses=error_responses(PayloadTooLarge, Unauthorized),
    )
    async def create(
        self, data: JSONBody[NewApiKey], api_keys: ApiKeys, current_user: CurrentUser
    ) -> CreatedApiKey:
        return await api_keys.create(current_user.id, data.name)

    @get("/", summary="The account's API keys (never their secrets)", responses=error_responses(Unauthorized))
    async def list_keys(self, api_keys: ApiKeys, current_user: CurrentUser) -> ApiKeyList:
        return ApiKeyList(data=await api_keys.list(current_user.id))

    @delete(
        "/{key_id:uuid}",
        status_code=204,
        summary="Delete an API key: it stops working at once",
        responses=error_responses(Unauthorized, NotFound),
    )
    async def remove(self, key_id: FromPath[UUID], api_keys: ApiKeys, current_user: CurrentUser) -> None:
        await api_keys.delete(current_user.id, key_id)
