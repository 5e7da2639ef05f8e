"""`python -m loadtests.sglang_sim.fleet --n 4 --base-port 30001 ...`: N workers on consecutive ports."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from loadtests.sglang_sim.config import add_arguments, from_namespace
from loadtests.sglang_sim.runner import start_subprocess, stop_subprocess


def main(argv: Sequence[str] | None = None) -> int:
    """Start the fleet, print its URLs, and stop every worker on Ctrl-C/SIGTERM or when one dies."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.sglang_sim.fleet", description=__doc__)
    parser.add_argument("--n", type=int, default=4, help="number of workers (default: 4)")
    parser.add_argument(
        "--base-port", type=int, default=30001, help="port of the first worker (default: 30001)"
    )
    add_arguments(parser)  # every worker flag passes through
    ns = parser.parse_args(argv)
    base = from_namespace(ns)
    procs: list[subprocess.Popen[bytes]] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        for i in range(ns.n):
            proc, url = start_subprocess(base.replace(port=ns.base_port + i))
            procs.append(proc)
            print(url, flush=True)
        print(f"fleet of {ns.n} simulated SGLang workers up; Ctrl-C stops them", file=sys.stderr, flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a worker exited; stopping the fleet", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            stop_subprocess(p)


if __name__ == "__main__":
    raise SystemExit(main())
