"""Watching the fleet: health with thresholds, capacity from /server_info, load from /get_load, cache
turnover from /metrics, and the models file for workers added or removed at run time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from pathlib import Path
from typing import Any

from backend.inference.client import SGLangClient
from backend.inference.pool import WorkerPool
from backend.inference.worker import Worker
from backend.observability import metrics
from backend.periodic import Periodic
from backend.settings import InferenceSettings, SettingsError, read_models_file

logger = logging.getLogger("surge.routing")

# Re-read a worker's capacity this often (an operator may restart it with other flags).
SERVER_INFO_EVERY_S = 300.0
_COUNTER = re.compile(
    r"^(sglang:(?:prompt|cached|generation)_tokens_total)(?:\{[^}]*\})?\s+([0-9.eE+-]+)$", re.M
)


def cache_turnover(
    previous: tuple[float, dict[str, float]] | None, now: float, totals: dict[str, float]
) -> float:
    """Tokens per second entering a worker's cache: uncached prompt plus output, between two scrapes."""
    if previous is None:
        return 0.0
    then, before = previous
    elapsed = now - then
    if elapsed <= 0:
        return 0.0

    def delta(name: str) -> float:
        return max(0.0, totals.get(name, 0.0) - before.get(name, 0.0))

    inserted = (
        delta("sglang:prompt_tokens_total")
        - delta("sglang:cached_tokens_total")
        + delta("sglang:generation_tokens_total")
    )
    return max(0.0, inserted) / elapsed


def apply_load(worker: Worker, ranks: list[Any], now: float) -> None:
    """SGLang's /get_load, one entry per data-parallel rank: requests on the worker (running and waiting,
    every replica's) and those waiting in its queue, which tell admission that its KV memory is full."""
    entries = [rank for rank in ranks if isinstance(rank, dict)]
    worker.reported_load = sum(int(rank.get("num_reqs", 0)) for rank in entries)
    worker.reported_waiting = sum(int(rank.get("num_waiting_reqs", 0)) for rank in entries)
    worker.reported_at = now


class HealthMonitor:
    def __init__(self, pool: WorkerPool, client: SGLangClient, settings: InferenceSettings) -> None:
        self.pool = pool
        self.client = client
        self.settings = settings
        self._server_info_at: dict[str, float] = {}
        self._scrapes: dict[str, tuple[float, dict[str, float]]] = {}
        self._models_file_mtime: float | None = None
        self._rounds = Periodic(
            "surge-fleet-health",
            settings.health_interval_s,
            self._round,
            logger=logger,
            failure="fleet health round failed",
        )

    async def start(self) -> None:
        # One round before serving, so that routing and /readyz start from what the workers say.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.health_timeout_s + 1):
                await self.check_all()
        self._rounds.start()

    async def close(self) -> None:
        await self._rounds.stop()

    async def _round(self) -> None:
        self.reload_models_file()
        await self.check_all()

    async def check_all(self) -> None:
        await asyncio.gather(
            *(self.check(worker) for worker in self.pool.all_workers() if not worker.removed)
        )

    async def check(self, worker: Worker) -> None:
        timeout = self.settings.health_timeout_s
        ok = await self.client.healthy(worker.url, timeout)
        self.record_health(worker, ok)
        if not ok:
            return
        now = time.monotonic()
        if now - self._server_info_at.get(worker.url, float("-inf")) >= SERVER_INFO_EVERY_S:
            info = await self.client.get_json(worker.url, "/server_info", timeout)
            if isinstance(info, dict):
                self.apply_server_info(worker, info)
                self._server_info_at[worker.url] = now
        load = await self.client.get_json(worker.url, "/get_load", timeout)
        if isinstance(load, list):
            apply_load(worker, load, self.pool.clock())
        text = await self.client.get_text(worker.url, "/metrics", timeout)
        if text:
            totals = {name: float(value) for name, value in _COUNTER.findall(text)}
            worker.turnover_tokens_per_s = cache_turnover(self._scrapes.get(worker.url), now, totals)
            self._scrapes[worker.url] = (now, totals)

    def record_health(self, worker: Worker, ok: bool) -> None:
        """Flip health only after enough consecutive results, so one slow probe changes nothing."""
        if ok:
            worker.consecutive_successes += 1
            worker.consecutive_failures = 0
            if not worker.healthy and worker.consecutive_successes >= self.settings.health_success_threshold:
                worker.healthy = True
                logger.warning("worker healthy again", extra={"worker": worker.url})
        else:
            worker.consecutive_failures += 1
            worker.consecutive_successes = 0
            if worker.healthy and worker.consecutive_failures >= self.settings.health_failure_threshold:
                worker.healthy = False
                logger.warning("worker unhealthy; no new turns go to it", extra={"worker": worker.url})
        metrics.WORKER_HEALTHY.labels(worker.model_id, worker.url).set(1 if worker.healthy else 0)

    @staticmethod
    def apply_server_info(worker: Worker, info: dict[str, Any]) -> None:
        if isinstance(info.get("max_running_requests"), int) and info["max_running_requests"] > 0:
            worker.max_running = info["max_running_requests"]
        total = info.get("max_total_num_tokens")
        states = info.get("internal_states")
        if not isinstance(total, int) and isinstance(states, list) and states and isinstance(states[0], dict):
            total = states[0].get("max_total_num_tokens")
        if isinstance(total, int) and total > 0:
            worker.max_total_tokens = total

    def reload_models_file(self) -> None:
        """With SURGE_MODELS_FILE, workers join and leave when the file changes (no restart)."""
        path = self.settings.models_file
        if not path:
            return
        try:
            mtime = Path(path).stat().st_mtime
        except OSError:
            return
        if mtime == self._models_file_mtime:
            return
        try:
            models = read_models_file(path)
        except SettingsError as exc:
            logger.error(
                "SURGE_MODELS_FILE is not valid; keeping the current workers", extra={"error": str(exc)}
            )
            return
        self._models_file_mtime = mtime
        known = {spec.id for spec in self.settings.models}
        self.pool.reconcile([spec for spec in models if spec.id in known])
