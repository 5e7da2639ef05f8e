"""Locust ``LoadTestShape`` classes for WORKLOAD.md's load shapes (loadtests/shapes.py), in users.

Users = ``--base-users`` x the shape's multiplier over ``--shape-duration`` seconds, after ``--warmup``
and before ``--cooldown`` seconds at the base (options of loadtests/locustfile.py; without them the
defaults of ``ShapeSchedule``). ``SurgeShape`` takes the shape from ``--shape``; the other four are
fixed, for locustfiles of your own::

    from loadtests.locust_shapes import DiurnalShape  # noqa: F401 (Locust finds it by its type)

Importing this module imports locust, which monkey-patches the standard library with gevent.
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape

from loadtests.locust_support import ShapeSchedule


def schedule_from(options: Any, shape: str | None = None) -> ShapeSchedule:
    """The schedule of the parsed Locust options (``--shape`` unless ``shape`` is given)."""
    if options is None:
        return ShapeSchedule(shape=shape or "app_store_spike")
    return ShapeSchedule(
        shape=shape or options.shape,
        base_users=options.base_users,
        duration_s=options.shape_duration,
        warmup_s=options.warmup,
        cooldown_s=options.cooldown,
        peak=options.peak,
    )


class WorkloadShape(LoadTestShape):
    abstract = True
    shape: str | None = None  # None: the --shape option

    def __init__(self) -> None:
        super().__init__()
        self.schedule: ShapeSchedule | None = None

    def tick(self) -> tuple[int, float] | None:
        if self.schedule is None:
            environment = getattr(self.runner, "environment", None)
            self.schedule = schedule_from(getattr(environment, "parsed_options", None), self.shape)
        return self.schedule.tick(self.get_run_time())


class SurgeShape(WorkloadShape):
    """The shape named by ``--shape`` (default app_store_spike)."""


class SteadyShape(WorkloadShape):
    shape = "steady"


class AppStoreSpikeShape(WorkloadShape):
    """Baseline 10%, ramp to 30x over 10%, hold 40%, decay to 15x."""

    shape = "app_store_spike"


class DiurnalShape(WorkloadShape):
    """One day compressed: 0.2x at night, 1x (``--base-users``) at midday."""

    shape = "diurnal"


class PushStormShape(WorkloadShape):
    """A flash crowd of ``--peak`` x the base users within 5% of the run, halfway through."""

    shape = "push_storm"
