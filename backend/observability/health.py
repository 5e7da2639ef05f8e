"""``/healthz`` (the process is alive), ``/readyz`` (it can serve) and ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec
import redis.asyncio as aioredis
from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.inference.pool import WorkerPool

# A readiness check: returns "ok" or raises.
Probe = Callable[[], Awaitable[str]]
# The checks /readyz runs, by name; the composition root (backend.app) decides which apply.
ReadinessChecks = dict[str, Probe]

CHECK_TIMEOUT_S = 2.0


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]


@get("/healthz", exclude_from_auth=True, tags=["Operations"], summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


def database_probe(engine: AsyncEngine) -> Probe:
    async def probe() -> str:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return "ok"

    return probe


def redis_probe(redis: aioredis.Redis) -> Probe:
    async def probe() -> str:
        await redis.ping()
        return "ok"

    return probe


def inference_probe(pool: WorkerPool, model_id: str) -> Probe:
    """Ready when at least one of the model's workers passes its health checks."""

    async def probe() -> str:
        now = pool.clock()
        if not any(w.available(now) and w.consecutive_successes > 0 for w in pool.workers.get(model_id, [])):
            raise ConnectionError("no healthy worker")
        return "ok"

    return probe


async def _checked(name: str, probe: Probe) -> tuple[str, str]:
    try:
        return name, await asyncio.wait_for(probe(), CHECK_TIMEOUT_S)
    except Exception as exc:
        return name, f"failed: {type(exc).__name__}"


@get(
    "/readyz", exclude_from_auth=True, tags=["Operations"], summary="Database, Redis and inference reachable"
)
async def readyz(readiness: NamedDependency[ReadinessChecks]) -> Response[Readiness]:
    checks = dict(await asyncio.gather(*(_checked(name, probe) for name, probe in readiness.items())))
    ready = all(result == "ok" for result in checks.values())
    return Response(
        Readiness(status="ok" if ready else "unavailable", checks=checks),
        status_code=200 if ready else 503,
        headers={} if ready else {"Retry-After": "5"},
    )


@get(
    "/metrics",
    exclude_from_auth=True,
    tags=["Operations"],
    summary="Prometheus metrics",
    media_type=MediaType.TEXT,
)
async def metrics() -> Response[bytes]:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
