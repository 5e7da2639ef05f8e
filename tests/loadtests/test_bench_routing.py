"""The routing benchmark's load: sessions arrive at the planned rate even when the driver runs late."""

from __future__ import annotations

import random
import time

from loadtests.bench_routing import Driver, FleetSpec
from loadtests.workload import SessionPlan, Workload, WorkloadConfig


async def test_sessions_arrive_at_the_planned_rate_when_each_start_holds_the_loop(monkeypatch):
    # Each session start holds the event loop 2 ms, as a busy driver does; the mean gap is 5 ms. Had
    # every gap been slept after the start, the rate would have fallen to 1 / 7 ms (~143/s).
    async def start(self: Driver, plan: SessionPlan) -> None:
        time.sleep(0.002)  # noqa: ASYNC251 (holding the loop is the point)
        self.accepted += 1

    monkeypatch.setattr(Driver, "session", start)
    driver = Driver(
        url="http://127.0.0.1:9",
        workload=Workload(WorkloadConfig(seed=1), users=10),
        fleet=FleetSpec(),
        total_turns=300,
        rng=random.Random(7),
    )
    await driver.run(rate_per_s=200.0)
    assert driver.sessions == 300
    assert driver.sessions / driver.driving_s > 180, driver.sessions / driver.driving_s
