"""The inference domain's Litestar provider: the worker pool (routes that describe the fleet)."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide

from backend.deps import singleton
from backend.inference.pool import WorkerPool


def inference_providers(*, pool: WorkerPool) -> dict[str, Provide]:
    return {"pool": singleton(pool)}


Pool = NamedDependency[WorkerPool]
