"""Waiting for a condition instead of sleeping a guessed time: on a loaded 2-core machine a fixed sleep is
either too short (the test fails, or passes without having seen what it meant to check) or wasted."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def until(
    condition: Callable[[], T | Awaitable[T]],
    *,
    within_s: float = 10.0,
    what: str = "",
    every_s: float = 0.01,
) -> T:
    """Call ``condition`` until it returns something truthy, and return that; fail after ``within_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        result: Any = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[no-any-return]
        assert loop.time() < deadline, f"not reached within {within_s} s: {what or condition}"
        await asyncio.sleep(every_s)
