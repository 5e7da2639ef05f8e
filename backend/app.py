"""``create_app(settings)``: the only place that wires Surge together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Tag
from litestar.plugins.prometheus import PrometheusConfig

from backend import __version__
from backend.accounts.auth import OPENAPI_COMPONENTS, BearerAuthMiddleware
from backend.accounts.firebase import FirebaseAuth
from backend.accounts.passwords import Passwords
from backend.accounts.routes import AuthController, MeController
from backend.accounts.tokens import AccessTokens
from backend.admission.ratelimit import MemoryRateLimiter
from backend.conversations.routes import ConversationController, ShareController
from backend.db.engine import alchemy_config, create_engine, session_factory
from backend.deps import SHARED_DEPENDENCIES
from backend.errors import EXCEPTION_HANDLERS
from backend.firebase import build_firebase_app
from backend.observability.access_log import log_response, timing_middleware
from backend.observability.health import database_probe, healthz, metrics, readyz
from backend.observability.logging import configure_logging
from backend.observability.request_id import add_request_id_header
from backend.push.dispatcher import push_lifespan
from backend.push.fcm import build_sender
from backend.push.routes import DeviceController
from backend.runtime import Runtime
from backend.settings import Settings, load_settings

SCALAR = ScalarRenderPlugin(path="/")


@get("/docs", exclude_from_auth=True, include_in_schema=False, media_type=MediaType.HTML)
async def docs(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The API reference (Scalar), reading ``/schema/openapi.json``."""
    return Response(SCALAR.render(request, request.app.openapi_schema.to_schema()), media_type=MediaType.HTML)


def build_runtime(settings: Settings) -> Runtime:
    engine = create_engine(settings)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        passwords=Passwords(settings.auth),
        access_tokens=AccessTokens(settings.auth),
        rate_limiter=MemoryRateLimiter(),
        trusted_proxies=frozenset(
            proxy.strip() for proxy in settings.auth.trusted_proxies.split(",") if proxy.strip()
        ),
    )
    runtime.readiness["database"] = database_probe(runtime)
    firebase_app = build_firebase_app(settings)
    if firebase_app is not None:
        runtime.firebase_app = firebase_app
        if firebase_app.project_id:
            runtime.firebase_auth = FirebaseAuth(firebase_app, clock_skew_s=settings.firebase.clock_skew_s)
    runtime.push_sender = build_sender(firebase_app, has_credentials=bool(settings.fcm.credentials_file))
    return runtime


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    problems = settings.configuration_problems() + settings.production_problems()
    if problems:
        raise SystemExit("Surge cannot start:\n  - " + "\n  - ".join(problems))
    configure_logging(settings.server.log_level, json_lines=settings.server.log_json)
    runtime = build_runtime(settings)

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await runtime.engine.dispose()

    http_metrics = PrometheusConfig(
        app_name="surge",
        prefix="surge_http",
        group_path=True,
        exclude=["/metrics", "/healthz", "/readyz"],
    )
    return Litestar(
        route_handlers=[
            healthz,
            readyz,
            metrics,
            docs,
            AuthController,
            MeController,
            ConversationController,
            ShareController,
            DeviceController,
        ],
        dependencies=SHARED_DEPENDENCIES,
        plugins=[SQLAlchemyPlugin(config=alchemy_config(runtime.engine))],
        middleware=[
            timing_middleware,
            http_metrics.middleware,
            DefineMiddleware(BearerAuthMiddleware, exclude=["^/schema", "^/docs"]),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[add_request_id_header, log_response],
        # Surge configures logging itself (one JSON line per record); Litestar must not replace it.
        logging_config=None,
        lifespan=[lifespan, push_lifespan(runtime)],
        state=State({"runtime": runtime}),
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Surge API",
            version=__version__,
            description="Accounts, conversations and streamed reasoning answers for AI chat apps (API.md).",
            path="/schema",
            render_plugins=[SCALAR],
            components=[OPENAPI_COMPONENTS],
            tags=[
                Tag(name="Accounts"),
                Tag(name="Conversations"),
                Tag(name="Operations"),
                Tag(name="Devices"),
            ],
        ),
        debug=False,
    )
