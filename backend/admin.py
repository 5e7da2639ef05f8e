"""The administration routes (tier ``admin`` only): the fleet as this replica sees it, and the operator's
hand on the overload policy. They sit at the app level because they read across domains: inference's
workers and admission's state."""

from __future__ import annotations

import msgspec
from litestar import Router, get, put
from litestar.params import JSONBody

from backend.accounts.auth import admin_only
from backend.admission.board import Override
from backend.admission.deps import Admission
from backend.admission.schemas import AdmissionState, OverloadOverride
from backend.deps import SettingsDep
from backend.errors import Forbidden, PayloadTooLarge, Unauthorized, ValidationFailed, error_responses
from backend.inference.deps import Pool

# /get_load figures older than this are not shown as a worker's queue.
QUEUE_FRESH_S = 30.0


class FleetWorker(msgspec.Struct):
    url: str
    model: str
    healthy: bool
    circuit: str
    in_flight: int
    # Requests waiting in the worker's own queue (SGLang's num_waiting_reqs, every replica's).
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
    "/fleet",
    summary="Inference workers, routing and admission state (admin only)",
    responses=error_responses(Unauthorized, Forbidden),
)
async def fleet(pool: Pool, admission: Admission, settings: SettingsDep) -> Fleet:
    now = pool.clock()
    workers = [
        FleetWorker(
            url=worker.url,
            model=worker.model_id,
            healthy=worker.healthy,
            circuit=worker.breaker.state,
            in_flight=worker.in_flight,
            queue_depth=worker.reported_waiting if now - worker.reported_at < QUEUE_FRESH_S else 0,
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
    return Fleet(policy=settings.inference.routing_policy, workers=workers, admission=admission.state())


@put(
    "/overload",
    summary="Force a degrade level or open/close sign-ups by hand (null: automatic) (admin only)",
    description="Applies to every replica sharing Redis. Levels: 0 normal, 1 shorter answers for free "
    "users, 2 thinking off for free users, 3 sign-ups paused, 4 free turns that would have to wait "
    "refused (and shorter answers for plus). Returns the admission state after the change.",
    responses=error_responses(PayloadTooLarge, Unauthorized, Forbidden, ValidationFailed),
)
async def set_overload(data: JSONBody[OverloadOverride], admission: Admission) -> AdmissionState:
    await admission.set_override(Override(level=data.level, signups_open=data.signups_open))
    return admission.state()


def admin_router() -> Router:
    """``/v1/admin``: every route behind the ``admin_only`` guard (a router of its own per app)."""
    return Router(
        path="/v1/admin", route_handlers=[fleet, set_overload], guards=[admin_only], tags=["Administration"]
    )
