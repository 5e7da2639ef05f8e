"""The degrade ladder: a level from queue pressure, with hysteresis so that it does not flap.

Pressure is the queue's length as a multiple of the fleet's capacity. Level ``n`` begins at the n-th
threshold. The level rises once pressure has called for more for ``raise_after_s``; it falls one step
at a time, once pressure has stayed below half of the current level's threshold for ``lower_after_s``
(at the shedding level: below half of the first threshold, see :meth:`DegradeLadder.lower_below`).
What each level does to a turn is :func:`degrade`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NORMAL = 0
SHORTER_ANSWERS = 1  # free users' answers get a smaller max_tokens
THINKING_OFF = 2  # free users' turns lose reasoning (where the model makes it optional)
SIGNUPS_PAUSED = 3  # new accounts wait
SHED_FREE = 4  # free users' turns that would wait are refused with Retry-After; plus answers get shorter
MAX_LEVEL = SHED_FREE
# How far below a level's threshold pressure must fall before the level may drop.
LOWER_BAND = 0.5


@dataclass(eq=False)
class DegradeLadder:
    thresholds: tuple[float, ...]
    raise_after_s: float
    lower_after_s: float
    level: int = NORMAL
    _rising_since: float | None = field(default=None, repr=False)
    _falling_since: float | None = field(default=None, repr=False)

    def called_for(self, pressure: float) -> int:
        return sum(1 for threshold in self.thresholds if pressure >= threshold)

    def update(self, pressure: float, now: float) -> int:
        target = self.called_for(pressure)
        if target > self.level:
            self._falling_since = None
            if self._rising_since is None:
                self._rising_since = now
            if now - self._rising_since >= self.raise_after_s:
                self.level, self._rising_since = target, None
            return self.level
        self._rising_since = None
        if self.level > NORMAL and pressure < self.lower_below():
            if self._falling_since is None:
                self._falling_since = now
            if now - self._falling_since >= self.lower_after_s:
                self.level -= 1
                # The next step down needs its own quiet period.
                self._falling_since = now
        else:
            self._falling_since = None
        return self.level

    def lower_below(self) -> float:
        """Pressure under which the level may step down: half of its own threshold, except at the
        shedding level, which holds until next to nothing is refused (half of the first threshold).

        While free turns are shed, pressure sees the refused crowd only as the rate at which it comes
        back, times the hold time of answers that the ladder itself has shortened: the same crowd looks
        far smaller than it is. Stepping down on that let all of it in at once (the spike went 4 -> 2
        in mid-plateau, the queue from 0 to 90 turns and every process to 100% CPU, and paying users'
        first tokens from 0.05 s to 3 s) — only to climb back a few seconds later."""
        if self.level >= SHED_FREE:
            return self.thresholds[0] * LOWER_BAND
        return self.thresholds[self.level - 1] * LOWER_BAND


@dataclass(frozen=True, slots=True)
class TurnPlan:
    """What a turn asks of the model, after the overload policy."""

    thinking: bool
    max_tokens: int
    changes: dict[str, object]
    reason: str


def degrade(
    level: int,
    *,
    tier: str,
    thinking: bool,
    thinking_optional: bool,
    max_tokens: int,
    degraded_max_tokens: int,
) -> TurnPlan:
    """Apply ``level`` to one turn of ``tier``: free users first, paying users only at the top level."""
    changes: dict[str, object] = {}
    shorter = (tier == "free" and level >= SHORTER_ANSWERS) or (tier == "plus" and level >= SHED_FREE)
    if shorter and max_tokens > degraded_max_tokens:
        max_tokens = degraded_max_tokens
        changes["max_tokens"] = degraded_max_tokens
    if tier == "free" and level >= THINKING_OFF and thinking and thinking_optional:
        thinking = False
        changes["thinking"] = False
    return TurnPlan(
        thinking=thinking, max_tokens=max_tokens, changes=changes, reason=f"overload_level_{level}"
    )
