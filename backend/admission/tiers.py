"""What a tier may use: quotas per rolling window, turns at once, and its place in the queue."""

from __future__ import annotations

from dataclasses import dataclass

from backend.settings import TIERS, TierSettings


@dataclass(frozen=True, slots=True)
class TierLimits:
    tier: str
    # Per rolling window of ``window_s``; None is unlimited.
    messages: int | None
    tokens: int | None
    window_s: int
    concurrent_turns: int
    # Lower is served first when turns wait for capacity.
    priority: int

    @property
    def paying(self) -> bool:
        return self.tier != "free"


def tier_limits(settings: TierSettings, tier: str) -> TierLimits:
    """The limits of ``tier``; an unknown tier (a row written by hand) is treated as free."""
    name = tier if tier in TIERS else "free"

    def setting(field: str) -> int:
        value: int = getattr(settings, f"{name}_{field}")
        return value

    return TierLimits(
        tier=name,
        messages=setting("messages") or None,
        tokens=setting("tokens") or None,
        window_s=settings.window_s,
        concurrent_turns=max(1, setting("concurrent_turns")),
        priority=setting("priority"),
    )
