"""Faults set on simulated workers for the length of a block (``POST /sim/faults``), then cleared.

The session's shared fleet answers a turn in about a second; a test that must act on an answer still
being generated (cancel it, watch it) slows the workers down for a moment instead of racing them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx


@contextmanager
def faults(workers: list[str], **settings: Any) -> Iterator[None]:
    """``settings`` (e.g. ``slowdown=50.0``: every step takes 50 times longer) on every worker inside."""
    try:
        for url in workers:
            httpx.post(f"{url}/sim/faults", json=settings, timeout=10).raise_for_status()
        yield
    finally:
        for url in workers:
            httpx.delete(f"{url}/sim/faults", timeout=10).raise_for_status()
