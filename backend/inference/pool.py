"""The SGLang workers serving each model, how many turns each is running, and which one gets a turn."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from uuid import UUID

from backend.settings import ModelSpec


@dataclass(eq=False)
class Worker:
    """One SGLang server (or one sglang-router standing for many)."""

    url: str
    model_id: str
    in_flight: int = 0
    # Requests the worker runs at once (SGLang's max_running_requests, read from /server_info).
    max_running: int = 32
    healthy: bool = True


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What the pool knows about a turn when choosing its worker."""

    model_id: str
    conversation_id: UUID
    prompt_chars: int
    exclude: frozenset[str] = frozenset()


@dataclass(eq=False)
class WorkerPool:
    """Workers per model; picks one per turn (round robin, skipping workers already tried)."""

    models: dict[str, ModelSpec]
    workers: dict[str, list[Worker]] = field(default_factory=dict)
    _turns: dict[str, Iterator[int]] = field(default_factory=dict)

    @classmethod
    def from_models(cls, models: list[ModelSpec]) -> WorkerPool:
        return cls(
            models={spec.id: spec for spec in models},
            workers={
                spec.id: [Worker(url.rstrip("/"), spec.id) for spec in [spec] for url in spec.workers]
                for spec in models
            },
        )

    def choose(self, request: RouteRequest) -> Worker | None:
        candidates = [w for w in self.workers.get(request.model_id, []) if w.url not in request.exclude]
        if not candidates:
            return None
        counter = self._turns.setdefault(request.model_id, itertools.count())
        return candidates[next(counter) % len(candidates)]

    def capacity(self, model_id: str) -> int:
        """Turns the model's healthy workers can run at once."""
        return sum(w.max_running for w in self.workers.get(model_id, []) if w.healthy)

    def in_flight(self, model_id: str) -> int:
        """Turns this replica is streaming from the model's workers right now."""
        return sum(w.in_flight for w in self.workers.get(model_id, []))

    @contextmanager
    def running(self, worker: Worker) -> Iterator[Worker]:
        """Count the turn against the worker for as long as it streams from it."""
        worker.in_flight += 1
        try:
            yield worker
        finally:
            worker.in_flight -= 1
