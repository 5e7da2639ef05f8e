"""`python -m loadtests.sglang_sim.bench`: what one simulator process sustains (streams, tokens/s).

The simulator runs in one subprocess, the load generator in another, so neither steals the other's
interpreter. For each concurrency level the client keeps N chat streams open (ignore_eos, fixed length)
for a while and counts what arrives; the figure that matters is `achieved / model`: the token rate the
timing model promises at the batch the server actually ran versus what the process delivered (prefill
steps between streams count against it). Below ~0.9, the simulator itself is the bottleneck at that load;
a `mean_batch` well under `streams` means the client could not keep that many streams open. The client
reads the streams with the event-stream decoder of Surge's SDK (`surge.aiter_sse`), a generic one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from typing import Any

import httpx
from surge import aiter_sse

from loadtests.sglang_sim.config import SimConfig
from loadtests.sglang_sim.runner import free_port, start_subprocess, stop_subprocess


async def _one_stream(
    client: httpx.AsyncClient, url: str, tokens: int, stop_at: float, out: dict[str, float]
) -> None:
    body: dict[str, Any] = {
        "model": "bench",
        "messages": [{"role": "user", "content": f"bench {id(out)} {time.monotonic()}"}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    while time.monotonic() < stop_at:
        try:
            async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
                async for event in aiter_sse(r):
                    if not event.data.startswith("{"):  # the final [DONE]
                        continue
                    out["chunks"] += 1
                    if '"usage"' in event.data:
                        out["tokens"] += json.loads(event.data)["usage"]["completion_tokens"]
            out["streams"] += 1
        except httpx.TransportError:  # e.g. a pooled connection the server closed as idle: count, go on
            out["errors"] += 1
        body["messages"][0]["content"] += "."  # a new prompt each time: no cache shortcuts


async def _client(url: str, n: int, seconds: float, tokens: int) -> dict[str, float]:
    out = {"chunks": 0.0, "tokens": 0.0, "streams": 0.0, "errors": 0.0}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        t0 = time.monotonic()
        stop_at = t0 + seconds
        await asyncio.gather(*(_one_stream(client, url, tokens, stop_at, out) for _ in range(n)))
        out["elapsed"] = time.monotonic() - t0
    return out


def _client_process(url: str, n: int, seconds: float, tokens: int, queue: Any) -> None:
    queue.put(asyncio.run(_client(url, n, seconds, tokens)))


def run_level(url: str, config: SimConfig, n: int, seconds: float, tokens: int) -> dict[str, Any]:
    """Load the simulator at `url` with `n` concurrent streams; returns the measured row."""
    before = httpx.get(url + "/sim/stats").json()
    queue: Any = multiprocessing.get_context("spawn").Queue()
    proc = multiprocessing.get_context("spawn").Process(
        target=_client_process, args=(url, n, seconds, tokens, queue)
    )
    proc.start()
    result = queue.get(timeout=seconds + 300)  # a client that died must not hang the run
    proc.join()
    after = httpx.get(url + "/sim/stats").json()
    generated = after["generation_tokens"] - before["generation_tokens"]
    steps = max(1, after["decode_steps"] - before["decode_steps"])
    elapsed = result["elapsed"]
    # The batch the server actually ran: below `n` when the client cannot keep n streams open.
    batch = generated / steps
    step_s = (config.sim_decode_step_ms + config.sim_decode_step_per_req_ms * batch) / 1000
    model_rate = batch / step_s * config.sim_speedup  # tokens per real second the timing model promises
    return {
        "streams": n,
        "mean_batch": round(batch, 1),
        "completed_streams": int(result["streams"]),
        "client_errors": int(result["errors"]),
        "received_tokens_per_s": round(result["tokens"] / elapsed),
        "generated_tokens_per_s": round(generated / elapsed),
        "model_tokens_per_s": round(model_rate),
        "achieved_over_model": round(generated / elapsed / model_rate, 3),
        "chunks_per_s": round(result["chunks"] / elapsed),
        "lag_skips": after["lag_skips"] - before["lag_skips"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.sglang_sim.bench", description=__doc__)
    parser.add_argument("--streams", type=int, nargs="+", default=[8, 32, 64, 128])
    parser.add_argument("--seconds", type=float, default=15.0, help="real seconds per level")
    parser.add_argument("--tokens", type=int, default=2000, help="completion tokens per stream")
    parser.add_argument("--speedup", type=float, default=20.0)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    # The routing benchmark's worker (WORKLOAD.md), with room for every stream to run at once.
    config = SimConfig(
        port=free_port(),
        sim_speedup=args.speedup,
        sim_decode_step_ms=30.0,
        sim_decode_step_per_req_ms=0.2,
        sim_prefill_tokens_per_s=20000.0,
        max_total_tokens=max(150000, max(args.streams) * (args.tokens + 64)),
        max_running_requests=max(args.streams),
    )
    print(f"simulator: speed-up x{args.speedup:g}, decode 30 ms + 0.2 ms/req, {args.tokens} tokens/stream")
    proc, url = start_subprocess(config)
    rows = []
    try:
        for n in args.streams:
            rows.append(run_level(url, config, n, args.seconds, args.tokens))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        stop_subprocess(proc)
    cols = list(rows[0])
    print("\n" + " | ".join(cols))
    for row in rows:
        print(" | ".join(str(row[c]) for c in cols))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": {"speedup": args.speedup, "tokens": args.tokens}, "rows": rows}, f, indent=2)
    broken = any(r["completed_streams"] == 0 for r in rows)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
