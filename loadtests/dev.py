"""``make run``: the embedded default on one machine — two simulated SGLang workers and Surge on SQLite.

The workers are separate processes reached over HTTP, exactly as GPUs would be; Surge itself never
imports the simulator. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# How the default SURGE_MODELS entry is served (backend/settings.py): a DeepSeek V3.1-style model whose
# thinking is switched on per turn, its reasoning parsed apart from the answer.
WORKER_FLAGS = [
    "--served-model-name",
    "deepseek-v3.1",
    "--model-path",
    "deepseek-ai/DeepSeek-V3.1",
    "--chat-template",
    "deepseek-v3.1",
    "--reasoning-parser",
    "deepseek-r1",
    "--enable-metrics",
    "--enable-cache-report",
]


def wait_healthy(urls: list[str], fleet: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(urls)
    while pending:
        if fleet.poll() is not None:
            raise SystemExit(
                f"the simulated workers exited (code {fleet.returncode}); see .surge/workers.log"
            )
        if time.monotonic() > deadline:
            raise SystemExit(f"simulated workers not healthy after {timeout_s:.0f} s: {sorted(pending)}")
        for url in list(pending):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    pending.discard(url)
            except httpx.HTTPError:
                pass
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-port", type=int, default=30001, help="first simulated worker's port")
    parser.add_argument(
        "--speedup", type=float, default=4.0, help="simulated time per real second (4: a fast, lifelike demo)"
    )
    args = parser.parse_args()
    data_dir = Path(os.environ.get("SURGE_DATA_DIR", ".surge"))
    data_dir.mkdir(parents=True, exist_ok=True)
    urls = [f"http://127.0.0.1:{args.base_port + index}" for index in range(2)]
    with (data_dir / "workers.log").open("ab") as log:
        fleet = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loadtests.sglang_sim.fleet",
                "--n",
                "2",
                "--base-port",
                str(args.base_port),
                "--sim-speedup",
                str(args.speedup),
                *WORKER_FLAGS,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
    surge: subprocess.Popen[bytes] | None = None
    try:
        wait_healthy(urls, fleet)
        print(
            f"Two simulated SGLang workers: {', '.join(urls)} (log: {data_dir / 'workers.log'})", flush=True
        )
        env = dict(os.environ)
        if "SURGE_MODELS" not in env and args.base_port != 30001:
            env["SURGE_MODELS"] = (
                '[{"id": "deepseek-v3.1", "display_name": "DeepSeek V3.1 (simulated)", '
                f'"workers": ["{urls[0]}", "{urls[1]}"]}}]'
            )
        surge = subprocess.Popen([sys.executable, "-m", "backend.cli", "serve"], cwd=ROOT, env=env)
        return surge.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for process in (surge, fleet):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT if process is surge else signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    raise SystemExit(main())
