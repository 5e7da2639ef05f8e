"""``GET /v1/me/usage`` and ``PUT /v1/admin/overload``."""

from __future__ import annotations

from litestar import get, put
from litestar.params import JSONBody

from backend.accounts.auth import BEARER, admin_only
from backend.admission.board import Override
from backend.admission.quota import measure
from backend.admission.schemas import AdmissionState, OverloadOverride, UsageLimits, UsageUsed, UsageView
from backend.admission.tiers import tier_limits
from backend.deps import CurrentUser, DbSession, RuntimeDep
from backend.errors import Forbidden, Unauthorized, ValidationFailed, error_responses


@get(
    "/v1/me/usage",
    tags=["Accounts"],
    security=BEARER,
    summary="Your tier, its limits, what you used in the current window, and when it frees up",
    responses=error_responses(Unauthorized),
)
async def my_usage(current_user: CurrentUser, db_session: DbSession, runtime: RuntimeDep) -> UsageView:
    limits = tier_limits(runtime.settings.tiers, current_user.tier)
    usage = await measure(db_session, current_user.id, limits)
    return UsageView(
        tier=limits.tier,
        limits=UsageLimits(
            messages=limits.messages,
            tokens=limits.tokens,
            window_s=limits.window_s,
            concurrent_turns=limits.concurrent_turns,
        ),
        used=UsageUsed(messages=usage.messages, tokens=usage.tokens, concurrent_turns=usage.concurrent_turns),
        resets_at=usage.resets_at,
    )


@put(
    "/v1/admin/overload",
    tags=["Administration"],
    security=BEARER,
    guards=[admin_only],
    summary="Force a degrade level or open/close sign-ups by hand (null: automatic) (admin only)",
    description="Applies to every replica sharing Redis. Levels: 0 normal, 1 shorter answers for free "
    "users, 2 thinking off for free users, 3 sign-ups paused, 4 free turns that would have to wait "
    "refused (and shorter answers for plus). Returns the admission state after the change.",
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
)
async def set_overload(data: JSONBody[OverloadOverride], runtime: RuntimeDep) -> AdmissionState:
    await runtime.admission.set_override(Override(level=data.level, signups_open=data.signups_open))
    return runtime.admission.state()
