"""Fixtures for turn tests that need workers of their own (slow ones, faulty ones)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.app import create_app
from loadtests.sglang_sim import RunningSim, run_in_process
from tests.conftest import make_settings, serve, sim_config

ClientWith = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, list[RunningSim]]]]


@pytest.fixture
def client_with(database_url: str, tmp_path: Path) -> ClientWith:
    """A Surge of its own over simulated workers of its own: ``client_with([sim_kwargs, ...], **env)``."""

    @asynccontextmanager
    async def build(
        workers: list[dict[str, Any]], **environ: str
    ) -> AsyncIterator[tuple[httpx.AsyncClient, list[RunningSim]]]:
        sims: list[RunningSim] = []
        async with _sims(workers, sims):
            app = create_app(
                make_settings(database_url, tmp_path, workers=[sim.url for sim in sims], **environ)
            )
            async with serve(app) as client:
                yield client, sims

    return build


@asynccontextmanager
async def _sims(workers: list[dict[str, Any]], running: list[RunningSim]) -> AsyncIterator[None]:
    if not workers:
        yield
        return
    async with run_in_process(sim_config(**workers[0])) as sim:
        running.append(sim)
        async with _sims(workers[1:], running):
            yield
