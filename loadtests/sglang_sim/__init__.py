"""A simulated SGLang server: SGLang's HTTP API over a radix cache, a batch scheduler and a virtual clock.

Public API (what tests and benchmarks import):

- `SimConfig` — every flag; `build_app(config)` — the ASGI app (`app.server` holds its state);
- `run_in_process(config)` — async context manager serving it on a free port in this event loop;
- `run_subprocess(config)` / `start_subprocess` / `stop_subprocess` — the same in a child process;
- tokenizer, chat templates and text generation live in `tokenizer`, `chat_template`, `textgen`.
"""

from __future__ import annotations

from loadtests.sglang_sim.app import SimApp, build_app
from loadtests.sglang_sim.config import SimConfig
from loadtests.sglang_sim.runner import (
    RunningSim,
    free_port,
    run_in_process,
    run_subprocess,
    start_subprocess,
    stop_subprocess,
)

__all__ = [
    "RunningSim",
    "SimApp",
    "SimConfig",
    "build_app",
    "free_port",
    "run_in_process",
    "run_subprocess",
    "start_subprocess",
    "stop_subprocess",
]
