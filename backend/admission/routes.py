"""``GET /v1/me/usage``: a user's tier, its limits and what was used."""

from __future__ import annotations

from litestar import get

from backend.admission.quota import measure
from backend.admission.schemas import UsageLimits, UsageUsed, UsageView
from backend.admission.tiers import tier_limits
from backend.deps import CurrentUser, DbSession, SettingsDep
from backend.errors import Unauthorized, error_responses


@get(
    "/v1/me/usage",
    tags=["Accounts"],
    summary="Your tier, its limits, what you used in the current window, and when it frees up",
    responses=error_responses(Unauthorized),
)
async def my_usage(current_user: CurrentUser, db_session: DbSession, settings: SettingsDep) -> UsageView:
    limits = tier_limits(settings.tiers, current_user.tier)
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
