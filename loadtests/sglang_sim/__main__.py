"""`python -m loadtests.sglang_sim --port 30001 ...`: serve one simulated SGLang worker."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import uvicorn

from loadtests.sglang_sim.app import build_app
from loadtests.sglang_sim.config import parse_args


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags and serve until SIGINT/SIGTERM."""
    config = parse_args(argv)
    app = build_app(config)
    print(
        f"sglang_sim: {config.model_name} on http://{config.host}:{config.port} "
        f"(template {config.template_name}, speed-up x{config.sim_speedup:g})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level, timeout_keep_alive=5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
