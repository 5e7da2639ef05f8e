"""Load shapes of WORKLOAD.md: how the session arrival rate moves over a run, as a multiple of a baseline.

Each shape maps the fraction of the run elapsed (0 to 1) to a rate multiplier, so that benchmarks and
Locust's ``LoadTestShape`` compress days into minutes the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Shape = Callable[[float], float]


def steady(_fraction: float) -> float:
    return 1.0


def app_store_spike(fraction: float, *, peak: float = 30.0, settle: float = 15.0) -> float:
    """Baseline for 10% of the run, a ramp to 30x over the next 10%, hold for 40%, decay to 15x."""
    if fraction < 0.1:
        return 1.0
    if fraction < 0.2:
        return 1.0 + (peak - 1.0) * (fraction - 0.1) / 0.1
    if fraction < 0.6:
        return peak
    return peak - (peak - settle) * min(1.0, (fraction - 0.6) / 0.4)


def diurnal(fraction: float, *, trough: float = 0.2) -> float:
    """One day compressed: trough at the run's start and end (night), peak in the middle; peak = 1."""
    return trough + (1.0 - trough) * (1 - math.cos(2 * math.pi * fraction)) / 2


def push_storm(fraction: float, *, crowd: float = 20.0, at: float = 0.5, width: float = 0.05) -> float:
    """A flash crowd: a large share of users opens the app within one short window (a push campaign)."""
    return crowd if at <= fraction < at + width else 1.0


SHAPES: dict[str, Shape] = {
    "steady": steady,
    "app_store_spike": app_store_spike,
    "diurnal": diurnal,
    "push_storm": push_storm,
}
