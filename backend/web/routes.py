"""The web chat app's routes: its page at ``/`` and ``/s/{share_id}``, its files under ``/assets``.

Everything here is public (the app signs in through the API) and outside the OpenAPI document. The app's
responses carry a strict Content-Security-Policy: scripts, styles and connections from this origin only,
no inline script, no ``eval``, no framing. Model output is rendered as DOM text by the app itself, so
this policy is the second wall, not the first.
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from litestar import MediaType, Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.params import FromPath
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, ControllerRouterHandler, Message, Receive, Scope, Send

from backend.settings import Settings

STATIC = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    # Links in answers lead elsewhere; the page's address (a share id, say) stays here.
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
# Revalidate every time (ETag / Last-Modified make that cheap): a new release is picked up at once.
REVALIDATE = CacheControlHeader(no_cache=True)
PUBLIC = {"exclude_from_auth": True}


def security_headers(app: ASGIApp) -> ASGIApp:
    """Middleware adding :data:`SECURITY_HEADERS` to every response of the app's routes (the static file
    responses included, which ``response_headers`` does not reach)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


def web_routes(settings: Settings) -> list[ControllerRouterHandler]:
    """The app's route handlers (one router), or none when ``SURGE_WEB_ENABLED`` is false."""
    if not settings.server.web_enabled:
        return []
    page = (STATIC / "index.html").read_bytes()

    @get("/", include_in_schema=False, media_type=MediaType.HTML, cache_control=REVALIDATE)
    async def app_page() -> Response[bytes]:
        """The single page: sign-in, the conversation list and the chat view."""
        return Response(page, media_type=MediaType.HTML)

    @get("/s/{share_id:uuid}", include_in_schema=False, media_type=MediaType.HTML, cache_control=REVALIDATE)
    async def share_page(share_id: FromPath[UUID]) -> Response[bytes]:
        """The same page; it shows the shared conversation (``GET /v1/shares/{id}``) signed out."""
        del share_id  # read by the page from its address
        return Response(page, media_type=MediaType.HTML)

    assets = create_static_files_router(
        path="/assets",
        directories=[STATIC / "assets"],
        name="web_assets",
        cache_control=REVALIDATE,
        include_in_schema=False,
    )
    return [
        Router(
            path="/",
            route_handlers=[app_page, share_page, assets],
            middleware=[security_headers],
            opt=PUBLIC,
            include_in_schema=False,
        )
    ]
