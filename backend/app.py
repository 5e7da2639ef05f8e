"""``create_app(settings)``: the only place that wires Surge together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import httpx
import redis.asyncio as aioredis
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Tag
from litestar.plugins.prometheus import PrometheusConfig
from sqlalchemy.ext.asyncio import AsyncSession

from backend import __version__
from backend.accounts.auth import OPENAPI_COMPONENTS, BearerAuthMiddleware
from backend.accounts.firebase import FirebaseAuth
from backend.accounts.passwords import Passwords
from backend.accounts.routes import AuthController, MeController
from backend.accounts.tokens import AccessTokens
from backend.admission.board import MemoryBoard, OverloadBoard, RedisBoard
from backend.admission.controller import AdmissionController
from backend.admission.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from backend.admission.routes import my_usage, set_overload
from backend.chat.control import ControlChannel, LocalControlChannel, RedisControlChannel
from backend.chat.event_log import EventLog, MemoryEventLog, RedisEventLog
from backend.chat.leases import LeaseKeeper
from backend.chat.routes import TurnController, send_message
from backend.chat.runner import Turn, TurnRunner
from backend.chat.titles import TitleWriter
from backend.chat.websocket import chat_socket
from backend.conversations.routes import ConversationController, ShareController
from backend.db.base import new_id
from backend.db.engine import alchemy_config, create_engine, session_factory
from backend.deps import SHARED_DEPENDENCIES
from backend.errors import EXCEPTION_HANDLERS
from backend.firebase import build_firebase_app
from backend.inference.client import SGLangClient
from backend.inference.health import HealthMonitor
from backend.inference.pool import WorkerPool
from backend.inference.routes import fleet, list_models
from backend.observability.access_log import log_response, timing_middleware
from backend.observability.health import (
    database_probe,
    healthz,
    inference_probe,
    metrics,
    readyz,
    redis_probe,
)
from backend.observability.logging import configure_logging
from backend.observability.request_id import add_request_id_header
from backend.push.dispatcher import push_lifespan
from backend.push.fcm import build_sender
from backend.push.outbox import enqueue_completion
from backend.push.routes import DeviceController
from backend.runtime import Runtime
from backend.settings import Settings, load_settings
from backend.web.routes import web_routes

SCALAR = ScalarRenderPlugin(path="/")


@get("/docs", exclude_from_auth=True, include_in_schema=False, media_type=MediaType.HTML)
async def docs(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The API reference (Scalar), reading ``/schema/openapi.json``."""
    return Response(SCALAR.render(request, request.app.openapi_schema.to_schema()), media_type=MediaType.HTML)


async def notify_if_unattended(session: AsyncSession, turn: Turn, status: str, attached: bool) -> None:
    """An answer finished while no client watched its stream: queue an "answer ready" push, in the
    transaction that stores the answer (so it is sent exactly when the answer exists)."""
    if status == "complete" and not attached:
        await enqueue_completion(
            session, user_id=turn.user_id, conversation_id=turn.conversation_id, message_id=turn.message_id
        )


def build_runtime(settings: Settings) -> Runtime:
    """Every long-lived object of one process; nothing connects until the app starts."""
    engine = create_engine(settings)
    sessions = session_factory(engine)
    replica_id = new_id()
    redis = aioredis.Redis.from_url(settings.redis.url, max_connections=200) if settings.redis.url else None
    event_log: EventLog
    control: ControlChannel
    if redis is not None:
        event_log = RedisEventLog(
            redis, ttl_s=settings.chat.event_log_ttl_s, prefix=settings.redis.key_prefix
        )
        control = RedisControlChannel(redis, channel=f"{settings.redis.key_prefix}:control:cancel")
    else:
        event_log = MemoryEventLog(ttl_s=settings.chat.event_log_ttl_s)
        control = LocalControlChannel()
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, connect=5.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )
    pool = WorkerPool.from_settings(settings.inference)
    sglang = SGLangClient()
    rate_limiter: RateLimiter
    board: OverloadBoard
    if redis is not None:
        rate_limiter = RedisRateLimiter(redis, prefix=f"{settings.redis.key_prefix}:rl:")
        # A replica silent for a few intervals no longer counts (its level, its share of the fleet).
        board = RedisBoard(
            redis,
            fresh_s=max(5.0, 5 * settings.admission.interval_s),
            prefix=f"{settings.redis.key_prefix}:overload:",
        )
    else:
        rate_limiter, board = MemoryRateLimiter(), MemoryBoard()
    admission = AdmissionController(
        pool=pool, settings=settings.admission, board=board, replica_id=replica_id, limiter=rate_limiter
    )
    runner = TurnRunner(
        sessions=sessions,
        event_log=event_log,
        pool=pool,
        client=sglang,
        settings=settings.chat,
        replica_id=replica_id,
        shutdown_grace_s=settings.server.shutdown_grace_s,
        admission=admission,
    )
    runner.finishers.append(notify_if_unattended)
    if settings.chat.auto_titles:
        runner.on_complete.append(TitleWriter(sessions=sessions, pool=pool, client=sglang).after_turn)
    runtime = Runtime(
        settings=settings,
        replica_id=replica_id,
        engine=engine,
        sessions=sessions,
        passwords=Passwords(settings.auth),
        access_tokens=AccessTokens(settings.auth),
        rate_limiter=rate_limiter,
        redis=redis,
        http=http,
        event_log=event_log,
        control=control,
        pool=pool,
        sglang=sglang,
        runner=runner,
        fleet=HealthMonitor(pool, sglang, settings.inference),
        leases=LeaseKeeper(
            settings=settings, sessions=sessions, event_log=event_log, runner=runner, replica_id=replica_id
        ),
        admission=admission,
        trusted_proxies=frozenset(
            proxy.strip() for proxy in settings.auth.trusted_proxies.split(",") if proxy.strip()
        ),
    )
    runtime.readiness["database"] = database_probe(runtime)
    if redis is not None:
        runtime.readiness["redis"] = redis_probe(redis)
    for spec in settings.inference.models:
        runtime.readiness[f"model:{spec.id}"] = inference_probe(pool, spec.id)
    firebase_app = build_firebase_app(settings)
    if firebase_app is not None:
        runtime.firebase_app = firebase_app
        if firebase_app.project_id:
            runtime.firebase_auth = FirebaseAuth(firebase_app, clock_skew_s=settings.firebase.clock_skew_s)
    runtime.push_sender = build_sender(firebase_app, has_credentials=bool(settings.fcm.credentials_file))
    return runtime


@asynccontextmanager
async def running(runtime: Runtime) -> AsyncIterator[None]:
    """Start the background parts of a replica, and stop them in reverse order."""
    await runtime.event_log.start()
    await runtime.fleet.start()

    async def cancel_here(turn_id: UUID) -> None:
        await runtime.runner.cancel(turn_id)

    await runtime.control.start(cancel_here)
    await runtime.runner.start_checkpoints()
    await runtime.leases.start()
    await runtime.admission.start()
    try:
        yield
    finally:
        await runtime.admission.close()
        await runtime.runner.shutdown()
        await runtime.leases.close()
        await runtime.fleet.close()
        await runtime.control.close()
        await runtime.event_log.close()
        await runtime.http.aclose()
        await runtime.sglang.close()
        if runtime.redis is not None:
            await runtime.redis.aclose()


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
            async with running(runtime):
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
            TurnController,
            send_message,
            chat_socket,
            list_models,
            fleet,
            my_usage,
            set_overload,
            DeviceController,
            *web_routes(settings),
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
                Tag(name="Turns"),
                Tag(name="Models"),
                Tag(name="Administration"),
                Tag(name="Operations"),
                Tag(name="Devices"),
            ],
        ),
        debug=False,
    )
