"""A Surge process for a benchmark: ``python -m backend.cli serve`` on a free port, reached through the SDK.

The benchmarks run the product as it is deployed (its CLI, its settings from the environment) and talk to
it only over HTTP with ``surge`` (``AsyncSurge``), so what they measure includes the client an app uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from surge import AsyncSurge, SurgeError

from loadtests.sglang_sim import free_port

ROOT = Path(__file__).resolve().parents[1]

# What every benchmark's Surge runs with: a migrated database (the benchmark ran `surge migrate`), quiet
# logs, no title requests competing with the measured turns, password hashing cheap enough that signing
# up hundreds of users is not what is measured, and a short grace period on the way out.
BENCH_SETTINGS = {
    "SURGE_DATABASE_AUTO_MIGRATE": "false",
    "SURGE_LOG_LEVEL": "WARNING",
    "SURGE_AUTO_TITLES": "false",
    "SURGE_ARGON2_TIME_COST": "1",
    "SURGE_ARGON2_MEMORY_KIB": "64",
    "SURGE_SHUTDOWN_GRACE_S": "2",
}


@dataclass(frozen=True)
class SurgeProcess:
    url: str
    pid: int


async def wait_until_up(
    url: str, exit_code: Callable[[], int | None], *, ready: bool = False, timeout_s: float = 90
) -> None:
    """Poll ``GET /healthz`` (with ``ready``: ``GET /readyz``, database, Redis and workers reachable) until
    Surge says yes; ``RuntimeError`` if its process exits first (``exit_code()`` not None) or it takes
    longer than ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    async with AsyncSurge(base_url=url, max_retries=0, timeout=3) as probe:
        while time.monotonic() < deadline:
            if (code := exit_code()) is not None:
                raise RuntimeError(f"Surge exited with {code} before it was up")
            with contextlib.suppress(SurgeError):
                if not ready:
                    await probe.health.alive()
                    return
                if (await probe.health.ready()).ready:
                    return
            await asyncio.sleep(0.1 if not ready else 0.3)
    raise RuntimeError(f"Surge was not up on {url} within {timeout_s:.0f} s")


@contextlib.asynccontextmanager
async def serve(
    env: Mapping[str, str], *, port: int | None = None, quiet: bool = True, stop_timeout_s: float = 20
) -> AsyncIterator[SurgeProcess]:
    """Run ``surge serve`` with ``os.environ`` + ``BENCH_SETTINGS`` + ``env`` until the block ends."""
    port = port or free_port()
    output = asyncio.subprocess.DEVNULL if quiet else None
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "backend.cli", "serve", cwd=ROOT,
        env={**os.environ, **BENCH_SETTINGS, "SURGE_PORT": str(port), **env},
        stdout=output, stderr=output,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(url, lambda: process.returncode)
        yield SurgeProcess(url=url, pid=process.pid)
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), stop_timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
