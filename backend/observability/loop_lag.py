"""How late the event loop runs what is due: the plainest sign that a replica has more work than its core.

Every await of every request waits behind whatever the loop is busy with, so under load this lag is added
to each step of a turn (its transactions, the dispatch, the first token's way back to the phone) several
times over. CPU utilisation says the core is busy; this says how long each step waits for it.
"""

from __future__ import annotations

import asyncio
import logging

from backend.observability import metrics
from backend.periodic import Periodic

# Four wake-ups a second: negligible work, and enough samples for a p99 over a scrape interval.
INTERVAL_S = 0.25

logger = logging.getLogger("surge.observability")


def loop_lag_monitor(interval_s: float = INTERVAL_S) -> Periodic:
    """A periodic task that records how much later than due it wakes up (call in the running loop)."""
    loop = asyncio.get_running_loop()
    due = loop.time() + interval_s

    async def record() -> None:
        nonlocal due
        now = loop.time()
        metrics.EVENT_LOOP_LAG.observe(max(0.0, now - due))
        due = now + interval_s  # the next sleep starts now: nothing here awaits

    return Periodic(
        "surge-loop-lag", interval_s, record, logger=logger, failure="recording the event loop's lag failed"
    )
