"""The bearer security scheme of the OpenAPI document: declared once, on the router of the routes that need
an access token (``backend.app``), and by the one public path whose delete needs it too."""

from __future__ import annotations

from litestar.openapi.spec import Components, SecurityScheme

SECURITY_SCHEME = "BearerToken"
OPENAPI_COMPONENTS = Components(
    security_schemes={
        SECURITY_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="The access_token of a Session (POST /v1/auth/login, /signup or /refresh).",
        )
    }
)


# The OpenAPI security requirement of every route that needs a token, declared once on the router that
# holds them (backend.app); public routes live outside it and say ``exclude_from_auth=True``.
BEARER: list[dict[str, list[str]]] = [{SECURITY_SCHEME: []}]
