"""Start simulated workers for tests and benchmarks: in this process (uvicorn task) or as subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from loadtests.sglang_sim.app import SimApp, build_app
from loadtests.sglang_sim.config import SimConfig

_REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class RunningSim:
    """A simulator that is up: its URL, and (in-process only) its app for direct inspection."""

    url: str
    config: SimConfig
    app: SimApp | None = None


@contextlib.asynccontextmanager
async def run_in_process(config: SimConfig | None = None) -> AsyncIterator[RunningSim]:
    """Serve a simulator on a free port of 127.0.0.1 inside the current event loop.

    `async with run_in_process(SimConfig(sim_speedup=20)) as sim: httpx.get(sim.url + "/health")`.
    A port in `config` is used as given unless it is 0 (then a free one is picked).
    """
    config = (config or SimConfig()).replace(host="127.0.0.1")
    if config.port in (0, SimConfig.port):
        config = config.replace(port=free_port())
    app = build_app(config)
    server = uvicorn.Server(
        uvicorn.Config(app, host=config.host, port=config.port, log_level=config.log_level, lifespan="on")
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # surfaces the start-up error
                raise RuntimeError("simulator exited during start-up")
            await asyncio.sleep(0.01)
        yield RunningSim(f"http://{config.host}:{config.port}", config, app)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"simulator at {url} exited with code {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"simulator at {url} not healthy after {timeout} s")


def start_subprocess(
    config: SimConfig | None = None, *, timeout: float = 20.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Launch `python -m loadtests.sglang_sim` with `config`; returns the process once /health is 200."""
    config = config or SimConfig()
    if config.port == 0:
        config = config.replace(port=free_port())
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        # to_argv leaves out defaults, so the port is always passed explicitly (once).
        [
            sys.executable,
            "-m",
            "loadtests.sglang_sim",
            *config.replace(port=SimConfig.port).to_argv(),
            "--port",
            str(config.port),
        ],
        env=env,
        cwd=_REPO_ROOT,
    )
    url = f"http://{config.host}:{config.port}"
    try:
        _wait_healthy(url, proc, timeout)
    except BaseException:
        stop_subprocess(proc)
        raise
    return proc, url


def stop_subprocess(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def run_subprocess(config: SimConfig | None = None, *, timeout: float = 20.0) -> Iterator[RunningSim]:
    """A simulator in its own process for the duration of the block (port 0 picks a free port)."""
    config = config or SimConfig(port=0)
    proc, url = start_subprocess(config, timeout=timeout)
    try:
        yield RunningSim(url, config.replace(port=int(url.rsplit(":", 1)[1])))
    finally:
        stop_subprocess(proc)
