"""``create_app(settings)``: the composition root, the only place that builds Surge's parts and wires them.

::

    build_components(settings)      every long-lived object of one process (nothing connects yet)
      -> providers(components)      each domain's Litestar dependencies, by name
      -> running(components)        one lifespan: start in order, stop in reverse
      -> create_app(settings)       the Litestar app: public routes, and a router of the authenticated ones
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, MediaType, Request, Response, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Tag
from litestar.plugins.prometheus import PrometheusConfig
from litestar.types import ControllerRouterHandler, ExceptionHandler, ExceptionHandlersMap, Message, Scope
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend import __version__
from backend.accounts.auth import Authenticator, BearerAuthMiddleware, BearerZone
from backend.accounts.deps import account_providers
from backend.accounts.firebase import FirebaseAuth
from backend.accounts.limits import AuthRateLimits
from backend.accounts.passwords import Passwords
from backend.accounts.routes import AuthController, MeController, log_out
from backend.accounts.tokens import AccessTokens
from backend.admin import admin_router
from backend.admission.board import MemoryBoard, OverloadBoard, RedisBoard
from backend.admission.client_ip import ClientIps
from backend.admission.controller import AdmissionController
from backend.admission.creation import CreationLimits
from backend.admission.deps import admission_providers
from backend.admission.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter, TurnRateLimit
from backend.admission.routes import my_usage
from backend.admission.slots import UserSlots
from backend.allow import complete_allow
from backend.api_keys.auth import KeyAuthenticator
from backend.api_keys.deps import api_key_providers
from backend.api_keys.keys import KeyHasher
from backend.api_keys.routes import ApiKeyController
from backend.chat.control import ControlChannel, LocalControlChannel, RedisControlChannel
from backend.chat.deps import chat_providers
from backend.chat.event_log import EventLog, MemoryEventLog, RedisEventLog
from backend.chat.idempotency import KeyPurge
from backend.chat.leases import LeaseKeeper
from backend.chat.routes import TurnController, send_message
from backend.chat.runner import TurnRunner
from backend.chat.service import TurnService
from backend.chat.sse_schema import TurnEventStreamPlugin
from backend.chat.store import Finisher, TurnStore
from backend.chat.stream import TurnStreams
from backend.chat.titles import TitleWriter
from backend.chat.turn import FinishedTurn
from backend.chat.websocket import chat_socket
from backend.conversations.deps import conversation_providers
from backend.conversations.routes import ConversationController, ShareController
from backend.db.base import new_id
from backend.db.engine import alchemy_config, create_engine, session_factory
from backend.deps import shared_providers, singleton
from backend.errors import EXCEPTION_HANDLERS
from backend.firebase import build_firebase_app, close_firebase_app, use_local_endpoints
from backend.inference.client import SGLangClient
from backend.inference.deps import inference_providers
from backend.inference.health import HealthMonitor
from backend.inference.pool import WorkerPool
from backend.inference.routes import list_models
from backend.observability.access_log import log_response, timing_middleware
from backend.observability.health import (
    ReadinessChecks,
    database_probe,
    healthz,
    inference_probe,
    metrics,
    readyz,
    redis_probe,
)
from backend.observability.logging import configure_logging
from backend.observability.loop_lag import loop_lag_monitor
from backend.observability.request_id import add_request_id_header
from backend.openai_api.deps import openai_providers
from backend.openai_api.errors import handle_openai_error, openai_error_response
from backend.openai_api.routes import OPENAI_PREFIX, openai_router
from backend.openai_api.service import CompletionService
from backend.push.deps import push_providers
from backend.push.dispatcher import PushDispatcher
from backend.push.fcm import PushSender, build_sender
from backend.push.outbox import enqueue_completion
from backend.push.routes import DeviceController
from backend.redis_client import redis_client
from backend.request_guard import SurgeRequest, refuse_nul_in_query
from backend.security import BEARER, OPENAPI_COMPONENTS
from backend.settings import Settings, load_settings
from backend.web.routes import web_routes

SCALAR = ScalarRenderPlugin(path="/")


@get("/docs", exclude_from_auth=True, include_in_schema=False, media_type=MediaType.HTML)
async def docs(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The API reference (Scalar), reading ``/schema/openapi.json``."""
    return Response(SCALAR.render(request, request.app.openapi_schema.to_schema()), media_type=MediaType.HTML)


def notified(turn: FinishedTurn) -> bool:
    """An answer that finished while no client watched its stream gets an "answer ready" push."""
    return turn.status == "complete" and not turn.attached


async def queue_answer_ready(session: AsyncSession, turn: FinishedTurn) -> None:
    """Queue the push of an unwatched answer in the transaction that stores the answer (so it is sent
    exactly when the answer exists). Chat knows nothing of push; this is where the two meet."""
    await enqueue_completion(
        session, user_id=turn.user_id, conversation_id=turn.conversation_id, message_id=turn.message_id
    )


@dataclass(eq=False)
class Components:
    """Every long-lived object of one process. Routes never see this: each domain's providers hand out
    the pieces a route asks for by name; tests and operators may read it on ``app.state.components``."""

    settings: Settings
    replica_id: UUID
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis | None
    # inference
    sglang: SGLangClient
    pool: WorkerPool
    fleet: HealthMonitor
    # admission
    limiter: RateLimiter
    admission: AdmissionController
    client_ips: ClientIps
    turn_rate_limit: TurnRateLimit
    creation_limits: CreationLimits
    # what each user may hold open at once in this process
    stream_slots: UserSlots
    socket_slots: UserSlots
    # chat
    event_log: EventLog
    control: ControlChannel
    store: TurnStore
    runner: TurnRunner
    leases: LeaseKeeper
    turns: TurnService
    key_purge: KeyPurge
    title_writer: TitleWriter | None
    # accounts
    passwords: Passwords
    access_tokens: AccessTokens
    authenticator: Authenticator
    auth_limits: AuthRateLimits
    # API keys and the OpenAI-compatible API
    key_hasher: KeyHasher
    key_authenticator: KeyAuthenticator
    completions: CompletionService
    # firebase-admin's App (None without any Firebase setting), Firebase sign-in, and where pushes go.
    firebase_app: Any
    firebase_auth: FirebaseAuth | None
    push_sender: PushSender
    dispatcher: PushDispatcher | None
    readiness: ReadinessChecks


@dataclass(frozen=True, slots=True)
class SharedState:
    """What the replicas of one deployment share: in Redis, or in this process when it is alone."""

    event_log: EventLog
    control: ControlChannel
    limiter: RateLimiter
    board: OverloadBoard


def shared_state(settings: Settings, redis: aioredis.Redis | None) -> SharedState:
    if redis is None:
        return SharedState(
            event_log=MemoryEventLog(coalesce_s=settings.chat.stream_coalesce_ms / 1000),
            control=LocalControlChannel(),
            limiter=MemoryRateLimiter(),
            board=MemoryBoard(),
        )
    prefix = settings.redis.key_prefix
    return SharedState(
        event_log=RedisEventLog(
            redis,
            ttl_s=settings.chat.event_log_ttl_s,
            prefix=prefix,
            coalesce_s=settings.chat.stream_coalesce_ms / 1000,
        ),
        control=RedisControlChannel(redis, channel=f"{prefix}:control:cancel"),
        limiter=RedisRateLimiter(redis, prefix=f"{prefix}:rl:"),
        # A replica silent for a few intervals no longer counts (its level, its share of the fleet).
        board=RedisBoard(
            redis, fresh_s=max(5.0, 5 * settings.admission.interval_s), prefix=f"{prefix}:overload:"
        ),
    )


def readiness_checks(
    settings: Settings, engine: AsyncEngine, redis: aioredis.Redis | None, pool: WorkerPool
) -> ReadinessChecks:
    """What ``/readyz`` asks: the database, Redis when configured, a healthy worker for every model."""
    checks: ReadinessChecks = {"database": database_probe(engine)}
    if redis is not None:
        checks["redis"] = redis_probe(redis)
    for spec in settings.inference.models:
        checks[f"model:{spec.id}"] = inference_probe(pool, spec.id)
    return checks


def build_components(settings: Settings) -> Components:
    """Build every long-lived object of one process; nothing connects until :func:`running` starts it.

    Long because it is the one list of what a process is made of, in the order the parts depend on each
    other; each part's own construction lives with its domain."""
    engine = create_engine(settings)
    sessions = session_factory(engine)
    replica_id = new_id()
    redis = redis_client(settings.redis.url) if settings.redis.url else None
    shared = shared_state(settings, redis)
    event_log, control, limiter = shared.event_log, shared.control, shared.limiter
    pool = WorkerPool.from_settings(settings.inference)
    sglang = SGLangClient()
    admission = AdmissionController(
        pool=pool, settings=settings.admission, board=shared.board, replica_id=replica_id, limiter=limiter
    )
    firebase_app = build_firebase_app(settings)
    push_sender = build_sender(firebase_app, has_credentials=bool(settings.fcm.credentials_file))
    if settings.fcm.send_url and firebase_app is not None:
        use_local_endpoints(firebase_app, fcm_send_url=settings.fcm.send_url)
    store = TurnStore(sessions, event_log)
    store.finishers.append(Finisher(wants=notified, write=queue_answer_ready))
    dispatcher = (
        PushDispatcher(sessions, push_sender, settings.push) if settings.push.dispatcher_enabled else None
    )
    if dispatcher is not None:
        store.committed.append(lambda turn: dispatcher.wake() if notified(turn) else None)
    runner = TurnRunner(
        sessions=sessions,
        store=store,
        event_log=event_log,
        pool=pool,
        client=sglang,
        settings=settings.chat,
        replica_id=replica_id,
        shutdown_grace_s=settings.server.shutdown_grace_s,
        admission=admission,
    )
    title_writer = None
    if settings.chat.auto_titles:
        title_writer = TitleWriter(sessions=sessions, pool=pool, client=sglang)
        runner.on_complete.append(title_writer.after_turn)

    access_tokens = AccessTokens(settings.auth)
    # API keys are hashed under the server's signing secret: rotating it retires every key, as it does
    # every access token.
    key_hasher = KeyHasher(settings.auth.jwt_secret)
    turn_rate_limit = TurnRateLimit(limiter, settings.admission)
    firebase_auth = None
    if firebase_app is not None and firebase_app.project_id:
        firebase_auth = FirebaseAuth(firebase_app, clock_skew_s=settings.firebase.clock_skew_s)

    return Components(
        settings=settings,
        replica_id=replica_id,
        engine=engine,
        sessions=sessions,
        redis=redis,
        sglang=sglang,
        pool=pool,
        fleet=HealthMonitor(pool, sglang, settings.inference),
        limiter=limiter,
        admission=admission,
        client_ips=ClientIps(settings.auth.trusted_proxies),
        turn_rate_limit=turn_rate_limit,
        creation_limits=CreationLimits(limiter, settings.admission),
        stream_slots=UserSlots("event streams", settings.admission.streams_per_user),
        socket_slots=UserSlots("WebSockets", settings.admission.sockets_per_user),
        event_log=event_log,
        control=control,
        store=store,
        runner=runner,
        leases=LeaseKeeper(
            settings=settings,
            sessions=sessions,
            store=store,
            event_log=event_log,
            runner=runner,
            replica_id=replica_id,
        ),
        turns=TurnService(
            sessions=sessions,
            settings=settings,
            admission=admission,
            runner=runner,
            store=store,
            event_log=event_log,
            control=control,
            replica_id=replica_id,
        ),
        key_purge=KeyPurge(sessions),
        title_writer=title_writer,
        passwords=Passwords(settings.auth),
        access_tokens=access_tokens,
        authenticator=Authenticator(access_tokens, engine),
        auth_limits=AuthRateLimits(limiter, settings.auth, settings.firebase),
        key_hasher=key_hasher,
        key_authenticator=KeyAuthenticator(key_hasher, engine),
        completions=CompletionService(
            sessions=sessions,
            settings=settings,
            admission=admission,
            turn_rate_limit=turn_rate_limit,
            pool=pool,
            client=sglang,
        ),
        firebase_app=firebase_app,
        firebase_auth=firebase_auth,
        push_sender=push_sender,
        dispatcher=dispatcher,
        readiness=readiness_checks(settings, engine, redis, pool),
    )


@asynccontextmanager
async def running(c: Components) -> AsyncIterator[None]:
    """Start the parts of a replica in order and stop them in reverse, whatever fails on the way.

    Leases start before the runner and stop after it: a stopping runner lets its turns finish for the
    grace period, and their leases must be renewed meanwhile."""
    async with contextlib.AsyncExitStack() as stack:
        # Resources, released last.
        stack.push_async_callback(c.engine.dispose)
        if c.redis is not None:
            stack.push_async_callback(c.redis.aclose)
        stack.push_async_callback(c.sglang.close)
        if c.firebase_app is not None:
            stack.push_async_callback(close_firebase_app, c.firebase_app)
        stack.push_async_callback(c.push_sender.aclose)
        # Background work, stopped first.
        lag = loop_lag_monitor()
        lag.start()
        stack.push_async_callback(lag.stop)
        await c.event_log.start()
        stack.push_async_callback(c.event_log.close)
        await c.fleet.start()
        stack.push_async_callback(c.fleet.close)

        async def cancel_here(turn_id: UUID) -> None:
            await c.runner.cancel(turn_id)

        await c.control.start(cancel_here)
        stack.push_async_callback(c.control.close)
        await c.leases.start()
        stack.push_async_callback(c.leases.close)
        if c.title_writer is not None:
            stack.push_async_callback(c.title_writer.close)  # after the runner: its last turns title
        await c.runner.start_checkpoints()
        stack.push_async_callback(c.runner.shutdown)
        await c.key_purge.start()
        stack.push_async_callback(c.key_purge.stop)
        await c.admission.start()
        stack.push_async_callback(c.admission.close)
        if c.dispatcher is not None:
            c.dispatcher.start()
            stack.push_async_callback(c.dispatcher.stop)
        yield


def providers(c: Components) -> dict[str, Provide]:
    """Every domain's dependencies, by the names its routes ask for."""
    return {
        **shared_providers(c.settings),
        "readiness": singleton(c.readiness),
        **account_providers(
            passwords=c.passwords,
            access_tokens=c.access_tokens,
            authenticator=c.authenticator,
            firebase_auth=c.firebase_auth,
            auth_limits=c.auth_limits,
        ),
        **admission_providers(
            admission=c.admission,
            client_ips=c.client_ips,
            turn_rate_limit=c.turn_rate_limit,
            creation_limits=c.creation_limits,
            socket_slots=c.socket_slots,
        ),
        **inference_providers(pool=c.pool),
        **chat_providers(turns=c.turns, streams=TurnStreams(c.event_log, c.store, c.stream_slots)),
        **conversation_providers(live_answers=c.turns),
        **push_providers(),
        **api_key_providers(hasher=c.key_hasher),
        **openai_providers(completions=c.completions),
    }


def route_handlers() -> list[ControllerRouterHandler]:
    """The public routes, and under one router (which declares the bearer security once) every route
    that needs an access token."""
    authenticated = Router(
        path="/",
        security=BEARER,
        route_handlers=[
            log_out,
            MeController,
            ApiKeyController,
            my_usage,
            ConversationController,
            TurnController,
            send_message,
            list_models,
            DeviceController,
            admin_router(),
        ],
    )
    return [
        healthz,
        readyz,
        metrics,
        docs,
        AuthController,
        ShareController,  # public to read; its delete declares its own security
        chat_socket,  # authenticates with its first frame (API.md, WebSocket)
        authenticated,
        openai_router(),  # API keys only (the auth middleware's zone)
    ]


def api_key_zone(c: Components) -> BearerZone:
    """``/openai/v1/*`` takes API keys, never access tokens, and refuses in OpenAI's error shape."""
    return BearerZone(
        path_prefix=f"{OPENAI_PREFIX}/", authenticate=c.key_authenticator.user, respond=openai_error_response
    )


def exception_handlers() -> ExceptionHandlersMap:
    """Surge's error envelope, except for what fails under ``/openai/v1/`` before routing (an unknown path
    or method): the OpenAI router's own handlers never see those, and OpenAI's clients expect its shape."""

    def by_path(surge: Callable[[Request[Any, Any, Any], Any], Response[Any]]) -> ExceptionHandler[Any]:
        def handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
            if request.scope["path"].startswith(f"{OPENAI_PREFIX}/"):
                return handle_openai_error(request, exc)
            return surge(request, exc)

        return handler

    return {kind: by_path(handler) for kind, handler in EXCEPTION_HANDLERS.items()}


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
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
            Tag(name="API keys"),
            Tag(name="OpenAI-compatible API"),
        ],
    )


BeforeSendHook = Callable[[Message, Scope], Awaitable[None]]


def on_response_start(*hooks: BeforeSendHook) -> BeforeSendHook:
    """One ``before_send`` hook that runs ``hooks`` on a response's start only. Litestar calls its hooks
    for every message, and an event stream sends one per event: the three hooks that only look at the
    start would cost three calls per event."""

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] == "http.response.start":
            for each in hooks:
                await each(message, scope)

    return hook


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    problems = settings.configuration_problems() + settings.production_problems()
    if problems:
        raise SystemExit("Surge cannot start:\n  - " + "\n  - ".join(problems))
    configure_logging(settings.server.log_level, json_lines=settings.server.log_json)
    components = build_components(settings)

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        async with running(components):
            yield

    http_metrics = PrometheusConfig(
        app_name="surge",
        prefix="surge_http",
        group_path=True,
        exclude=["/metrics", "/healthz", "/readyz"],
    )
    return Litestar(
        route_handlers=[*route_handlers(), *web_routes(settings)],
        dependencies=providers(components),
        plugins=[SQLAlchemyPlugin(config=alchemy_config(components.engine)), TurnEventStreamPlugin()],
        middleware=[
            timing_middleware,
            http_metrics.middleware,
            DefineMiddleware(
                BearerAuthMiddleware,
                authenticator=components.authenticator,
                zones=(api_key_zone(components),),
                exclude=["^/schema", "^/docs"],
            ),
        ],
        exception_handlers=exception_handlers(),
        request_class=SurgeRequest,
        before_request=refuse_nul_in_query,
        before_send=[on_response_start(add_request_id_header, log_response, complete_allow)],
        # Surge configures logging itself (one JSON line per record); Litestar must not replace it.
        logging_config=None,
        lifespan=[lifespan],
        state=State({"components": components}),
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=openapi_config(),
        debug=False,
    )


# Container objects allocated (net of those freed) between young-generation collections; Python's default
# is 700. Nearly everything a stream allocates is freed by reference counting at once, but bursts (turns
# starting, a window's events) passed 700 about 45 times a second with 500 streams open, and every tenth
# of every tenth of those walked the whole heap of the open turns: 10 % of the process's CPU went to the
# collector, and each full collection held the event loop ~60 ms. At 10,000 there were 17 collections in
# the same run, no full one, and the same memory per stream.
YOUNG_GC_THRESHOLD = 10_000


def create_served_app() -> Litestar:
    """``create_app`` as ``surge serve`` runs it, a process of its own: once started, everything built so
    far (modules, mappers, routes, pools: about 200,000 objects) is moved out of the garbage collector's
    sight. Otherwise each full collection walks all of it again, which cost ~0.7 ms of CPU per turn under
    load; what a request allocates is collected as before, less often (``YOUNG_GC_THRESHOLD``)."""
    app = create_app()
    app.on_startup.append(_freeze_heap)
    return app


def _freeze_heap() -> None:
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)
