"""The bearer security schemes of the OpenAPI document: access tokens, declared once on the router of the
routes that need one (``backend.app``) and by the one public path whose delete needs it too; API keys,
declared once on the router of the OpenAI-compatible API (``backend.openai_api.routes``)."""

from __future__ import annotations

from litestar.openapi.spec import Components, SecurityScheme

SECURITY_SCHEME = "BearerToken"
API_KEY_SCHEME = "ApiKey"
OPENAPI_COMPONENTS = Components(
    security_schemes={
        SECURITY_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="The access_token of a Session (POST /v1/auth/login, /signup or /refresh).",
        ),
        API_KEY_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="sk-surge-…",
            description="An API key (POST /v1/me/api_keys); valid on /openai/v1/* only.",
        ),
    }
)


# The OpenAPI security requirement of every route that needs a token, declared once on the router that
# holds them (backend.app); public routes live outside it and say ``exclude_from_auth=True``.
BEARER: list[dict[str, list[str]]] = [{SECURITY_SCHEME: []}]
API_KEY: list[dict[str, list[str]]] = [{API_KEY_SCHEME: []}]
