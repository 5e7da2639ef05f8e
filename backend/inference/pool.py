"""The SGLang workers serving each model, and which one gets each turn.

The pool owns the workers (added and removed at run time), asks the configured routing policy to
choose among the available ones, counts every turn in flight against its worker, and feeds each
outcome back to the policy. Health, capacity and load come from ``HealthMonitor``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from backend.inference.policies import POLICIES, Decision, Outcome, RouteRequest, RoutingPolicy
from backend.inference.worker import CircuitBreaker, Worker
from backend.observability import metrics
from backend.settings import InferenceSettings, ModelSpec

logger = logging.getLogger("surge.routing")

Clock = Callable[[], float]


@dataclass(eq=False)
class Dispatch:
    """One request on its way to a worker: release it exactly once, with what happened."""

    pool: WorkerPool
    request: RouteRequest
    decision: Decision
    started_at: float
    first_token_seen: bool = False
    released: bool = False

    @property
    def worker(self) -> Worker:
        return self.decision.worker

    def first_token(self) -> None:
        if not self.first_token_seen:
            self.first_token_seen = True
            self.worker.pending_prefill_tokens = max(
                0.0, self.worker.pending_prefill_tokens - self.decision.uncached_tokens
            )

    def release(self, outcome: Outcome | None, *, worker_failed: bool = False) -> None:
        if self.released:
            return
        self.released = True
        self.first_token()
        self.pool.finish(self, outcome, worker_failed=worker_failed)


@dataclass(eq=False)
class WorkerPool:
    settings: InferenceSettings
    clock: Clock = time.time
    workers: dict[str, list[Worker]] = field(default_factory=dict)
    policies: dict[str, RoutingPolicy] = field(default_factory=dict)
    models: dict[str, ModelSpec] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: InferenceSettings, clock: Clock = time.time) -> WorkerPool:
        pool = cls(settings=settings, clock=clock)
        pool.reconcile(settings.models)
        return pool

    # --- membership ---
    def reconcile(self, models: list[ModelSpec]) -> None:
        """Make the pool serve exactly ``models``: new workers join at once; a removed worker gets no new
        turns but finishes the ones it has."""
        self.models = {spec.id: spec for spec in models}
        for spec in models:
            current = {w.url: w for w in self.workers.get(spec.id, [])}
            wanted = [url.rstrip("/") for url in spec.workers]
            for url in wanted:
                if url not in current:
                    logger.info("worker joins", extra={"model": spec.id, "worker": url})
                    current[url] = self._new_worker(url, spec.id)
                current[url].removed = False
            for url, worker in current.items():
                if url not in wanted and not worker.removed:
                    logger.info("worker leaves", extra={"model": spec.id, "worker": url})
                    worker.removed = True
            # Keep removed workers only while they still have turns to finish.
            self.workers[spec.id] = [w for w in current.values() if not w.removed or w.in_flight]
            self.policies.setdefault(spec.id, POLICIES[self.settings.routing_policy]())
        for model_id in list(self.workers):
            if model_id not in self.models:
                for worker in self.workers[model_id]:
                    worker.removed = True
                self.workers[model_id] = [w for w in self.workers[model_id] if w.in_flight]

    def _new_worker(self, url: str, model_id: str) -> Worker:
        return Worker(
            url=url,
            model_id=model_id,
            breaker=CircuitBreaker(
                failures_to_open=self.settings.breaker_failures, cooldown_s=self.settings.breaker_cooldown_s
            ),
        )

    def all_workers(self) -> list[Worker]:
        return [worker for workers in self.workers.values() for worker in workers]

    # --- routing ---
    def dispatch(self, request: RouteRequest, *, exclude: frozenset[str] = frozenset()) -> Dispatch | None:
        """Choose a worker for ``request`` (not one of ``exclude``, the workers it already failed on) and
        count the request against it; None if none is available."""
        now = self.clock()
        candidates = [
            w for w in self.workers.get(request.model_id, []) if w.available(now) and w.url not in exclude
        ]
        if not candidates:
            metrics.ROUTING_DECISIONS.labels(
                request.model_id, "none", self.policy_name(request.model_id), "no_worker"
            ).inc()
            return None
        policy = self.policies[request.model_id]
        decision = policy.choose(request, candidates, now)
        worker = decision.worker
        worker.breaker.dispatched()
        worker.in_flight += 1
        worker.last_dispatch_at = now
        worker.pending_prefill_tokens += decision.uncached_tokens
        worker.decisions[decision.reason] += 1
        metrics.ROUTING_DECISIONS.labels(request.model_id, worker.url, policy.name, decision.reason).inc()
        metrics.WORKER_IN_FLIGHT.labels(request.model_id, worker.url).set(worker.in_flight)
        logger.debug(
            "routed",
            extra={
                "model": request.model_id,
                "worker": worker.url,
                "policy": policy.name,
                "reason": decision.reason,
                "estimates": decision.estimates,
            },
        )
        return Dispatch(self, request, decision, started_at=now)

    def finish(self, dispatch: Dispatch, outcome: Outcome | None, *, worker_failed: bool) -> None:
        worker, now = dispatch.worker, self.clock()
        worker.in_flight -= 1
        metrics.WORKER_IN_FLIGHT.labels(worker.model_id, worker.url).set(worker.in_flight)
        if worker_failed:
            worker.breaker.failed(now)
        else:
            worker.breaker.succeeded()
        if outcome is not None and outcome.ok:
            worker.prompt_tokens += outcome.prompt_tokens
            worker.cached_tokens += outcome.cached_tokens
            worker.record_insertion(
                now, outcome.prompt_tokens - outcome.cached_tokens + outcome.completion_tokens
            )
            metrics.WORKER_PROMPT_TOKENS.labels(worker.model_id, worker.url).inc(outcome.prompt_tokens)
            metrics.WORKER_CACHED_TOKENS.labels(worker.model_id, worker.url).inc(outcome.cached_tokens)
            self.policies[worker.model_id].observe(dispatch.request, dispatch.decision, outcome, now)
        if worker.removed and not worker.in_flight:
            self.workers[worker.model_id] = [
                w for w in self.workers.get(worker.model_id, []) if w is not worker
            ]

    def policy_name(self, model_id: str) -> str:
        policy = self.policies.get(model_id)
        return policy.name if policy else self.settings.routing_policy

    # --- what admission needs ---
    def capacity(self, model_id: str) -> int:
        """Turns the model's healthy workers can run at once (for admission)."""
        now = self.clock()
        healthy = [w for w in self.workers.get(model_id, []) if w.available(now)]
        spec = self.models.get(model_id)
        if spec is not None and spec.max_running and healthy:
            return spec.max_running
        # A worker that queues requests while running fewer than max_running has run out of KV memory
        # first: what it runs now is all it can take, and more would only wait in its FCFS queue.
        return sum(int(w.running_capacity(now)) for w in healthy)

    def in_flight(self, model_id: str) -> int:
        """Turns this replica is streaming from the model's workers right now."""
        return sum(w.in_flight for w in self.workers.get(model_id, []))
