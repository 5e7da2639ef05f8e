"""Shapes of the usage and overload routes."""

from __future__ import annotations

from datetime import datetime

import msgspec


class UsageLimits(msgspec.Struct):
    """Per rolling window of ``window_s``; null is unlimited."""

    messages: int | None
    tokens: int | None
    window_s: int
    concurrent_turns: int


class UsageUsed(msgspec.Struct):
    messages: int
    tokens: int
    concurrent_turns: int


class UsageView(msgspec.Struct):
    tier: str
    limits: UsageLimits
    used: UsageUsed
    # When the oldest usage still counted leaves the window, freeing quota (now, if nothing counts).
    resets_at: datetime


class OverloadOverride(msgspec.Struct, forbid_unknown_fields=True):
    """An operator's override; a null (or absent) field returns that half to the automatic policy."""

    level: int | None = None
    signups_open: bool | None = None


class QueueView(msgspec.Struct):
    waiting: int
    holding: int
    slots: int
    oldest_wait_s: float
    mean_hold_s: float
    # Turns refused by the overload policy per second (smoothed): demand the queue does not show.
    shed_per_s: float


class AdmissionState(msgspec.Struct):
    """The overload policy as this replica applies it, and its queues."""

    degrade_level: int
    automatic_level: int
    override_level: int | None
    signups_open: bool
    signups_override: bool | None
    pressure: float
    replicas: int
    queues: dict[str, QueueView]
