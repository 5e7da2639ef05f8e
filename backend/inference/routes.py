"""``GET /v1/models``: the models users can pick."""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import get

from backend.accounts.auth import BEARER, admin_only
from backend.admission.schemas import AdmissionState
from backend.deps import RuntimeDep
from backend.errors import Forbidden, Unauthorized, error_responses


class Model(msgspec.Struct):
    id: str
    display_name: str
    thinking: Literal["always", "optional", "never"]
    context_tokens: int
    max_output_tokens: int


class ModelList(msgspec.Struct):
    data: list[Model]


@get(
    "/v1/models",
    tags=["Models"],
    security=BEARER,
    summary="Models to chat with",
    responses=error_responses(Unauthorized),
)
async def list_models(runtime: RuntimeDep) -> ModelList:
    return ModelList(
        data=[
            Model(
                id=spec.id,
                display_name=spec.display_name,
                thinking=spec.thinking,
                context_tokens=spec.context_tokens,
                max_output_tokens=spec.max_output_tokens,
            )
            for spec in runtime.settings.inference.models
        ]
    )


class FleetWorker(msgspec.Struct):
    url: str
    model: str
    healthy: bool
    circuit: str
    in_flight: int
    queue_depth: int
    max_running: int
    max_total_tokens: int
    prompt_tokens: int
    cached_tokens: int
    hit_rate: float
    routing_decisions: dict[str, int]
    removed: bool


class Fleet(msgspec.Struct):
    """Every inference worker as this replica sees it, the routing policy, and the admission state."""

    policy: str
    workers: list[FleetWorker]
    admission: AdmissionState


@get(
    "/v1/admin/fleet",
    tags=["Administration"],
    security=BEARER,
    guards=[admin_only],
    summary="Inference workers, routing and admission state (admin only)",
    responses=error_responses(Unauthorized, Forbidden),
)
async def fleet(runtime: RuntimeDep) -> Fleet:
    pool = runtime.pool
    now = pool.clock()
    workers = [
        FleetWorker(
            url=worker.url,
            model=worker.model_id,
            healthy=worker.healthy,
            circuit=worker.breaker.state,
            in_flight=worker.in_flight,
            queue_depth=max(0, worker.reported_load - worker.max_running)
            if now - worker.reported_at < 30
            else 0,
            max_running=worker.max_running,
            max_total_tokens=worker.max_total_tokens,
            prompt_tokens=worker.prompt_tokens,
            cached_tokens=worker.cached_tokens,
            hit_rate=round(worker.hit_rate, 4),
            routing_decisions=dict(worker.decisions),
            removed=worker.removed,
        )
        for worker in pool.all_workers()
    ]
    return Fleet(
        policy=runtime.settings.inference.routing_policy, workers=workers, admission=runtime.admission_state()
    )
