"""Continuous batching on a virtual clock: admission, chunked prefill, decode steps, retraction, abort."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from loadtests.sglang_sim.config import SimConfig
from loadtests.sglang_sim.faults import Faults
from loadtests.sglang_sim.metrics import SimStats
from loadtests.sglang_sim.output_plan import FinishReason, OutputPlan
from loadtests.sglang_sim.radix_cache import RadixCache, TreeNode
from loadtests.sglang_sim.timing import TimingModel, VirtualClock
from loadtests.sglang_sim.trace import RequestTrace, TracedRequest

log = logging.getLogger(__name__)

# SGLang's scheduler constants: output tokens reserved per request when admitting (clipped), and the
# reservation ratio that starts high, decays each decode step, and jumps back after a retraction.
CLIP_MAX_NEW_TOKENS = 4096
INIT_NEW_TOKEN_RATIO = 0.7
MIN_NEW_TOKEN_RATIO = 0.1
NEW_TOKEN_RATIO_DECAY = (INIT_NEW_TOKEN_RATIO - MIN_NEW_TOKEN_RATIO) / 600
LPM_MAX_QUEUE = 128  # above this SGLang falls back to FCFS: matching every waiting request costs too much
THROUGHPUT_WINDOW_STEPS = 40  # SGLang logs gen_throughput every 40 decode steps


class QueueFullError(Exception):
    """The waiting queue holds max_queued_requests already."""

    message = "The request queue is full."


@dataclass(eq=False)
class Request:
    """One generation request as the scheduler tracks it; times are virtual seconds."""

    rid: str
    prompt_ids: list[int]
    plan: OutputPlan
    max_new_tokens: int | None
    arrival: float
    priority: int = 0  # only read with --enable-priority-scheduling
    hold_until_real: float = 0.0  # fault: not admitted before this monotonic time
    status: str = "waiting"  # waiting | running | finished
    num_output: int = 0
    cached_tokens: int = 0
    scheduled_once: bool = False
    fill_len: int = 0  # tokens to hold KV for at the current admission (prompt + output so far)
    kv_len: int = 0  # tokens whose KV is computed
    tree_len: int = 0  # leading tokens owned by the radix tree and locked through `node`
    node: TreeNode | None = None
    retractions: int = 0
    first_token_at: float | None = None
    finished_at: float | None = None
    finish_reason: FinishReason | None = None
    last_notified: int = 0
    event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def finished(self) -> bool:
        """Whether the request has ended (normally or aborted)."""
        return self.status == "finished"

    def remaining_reservation(self) -> int:
        """Output tokens SGLang would still reserve KV for (it does not know the true length)."""
        budget = self.max_new_tokens if self.max_new_tokens is not None else CLIP_MAX_NEW_TOKENS
        return max(0, min(budget - self.num_output, CLIP_MAX_NEW_TOKENS))

    def sequence(self) -> list[int]:
        """Prompt and output so far: the tokens whose KV this request builds."""
        return self.prompt_ids + self.plan.tokens[: self.num_output]


class Scheduler:
    """One simulated SGLang scheduler: a radix cache, a waiting queue, a running batch, one GPU clock."""

    def __init__(self, config: SimConfig, faults: Faults, stats: SimStats, clock: VirtualClock) -> None:
        self.config = config
        self.faults = faults
        self.stats = stats
        self.clock = clock
        self.timing = TimingModel(
            config.sim_prefill_tokens_per_s,
            config.sim_decode_step_ms / 1000,
            config.sim_decode_step_per_req_ms / 1000,
        )
        self.cache = RadixCache(config.page_size, "lfu" if config.radix_eviction_policy == "lfu" else "lru")
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.chunked: Request | None = None  # the request whose prompt is being prefilled in chunks
        self.by_rid: dict[str, Request] = {}
        self.private_tokens = 0  # KV of in-flight requests that the tree does not own
        self.new_token_ratio = INIT_NEW_TOKEN_RATIO
        self.v = 0.0  # the scheduler's virtual time: where the simulated GPU is
        self.step_count = 0
        self._work = asyncio.Event()
        self._dirty: set[Request] = set()
        self._last_flush = time.monotonic()
        self._emit_interval = config.sim_emit_interval_ms / 1000
        self._max_lag_v = config.sim_max_lag_ms / 1000 * config.sim_speedup
        self._tp_tokens = 0
        self._tp_steps = 0
        self._tp_since = 0.0
        self._task: asyncio.Task[None] | None = None
        self.trace = RequestTrace(config.sim_trace_file) if config.sim_trace_file else None

    # ----- accounting -----

    @property
    def used_tokens(self) -> int:
        """KV tokens that cannot be freed now: running requests and the cache they lock."""
        return self.private_tokens + self.cache.protected_size

    def available(self) -> int:
        """KV tokens free without evicting anything."""
        return self.config.max_total_tokens - self.cache.total_size - self.private_tokens

    def _ensure_free(self, tokens: int) -> bool:
        short = tokens - self.available()
        if short > 0:
            self.stats.num_evicted_tokens += self.cache.evict(short)
        return self.available() >= tokens

    def load(self) -> dict[str, int]:
        """SGLang's /get_load entry for this (single) data-parallel rank."""
        return {
            "dp_rank": 0,
            "num_reqs": len(self.running) + len(self.waiting) + (1 if self.chunked else 0),
            "num_waiting_reqs": len(self.waiting),
            "num_tokens": self.used_tokens,
        }

    # ----- requests in and out -----

    def submit(self, req: Request) -> None:
        """Queue a request (raises QueueFullError as SGLang's scheduler aborts it with 503)."""
        limit = self.config.max_queued_requests
        if limit is not None and len(self.waiting) + 1 > limit:
            self.stats.num_rejected += 1
            raise QueueFullError(QueueFullError.message)
        if req.rid in self.by_rid:
            raise ValueError(f"Duplicate request ID {req.rid}")
        req.arrival = max(req.arrival, self.clock.now())
        self.by_rid[req.rid] = req
        self.waiting.append(req)
        self._work.set()

    def abort(self, rid: str, message: str = "Aborted by AbortReq.") -> bool:
        """End a request with finish reason abort; returns whether it was in flight."""
        req = self.by_rid.get(rid)
        if req is None or req.finished:
            return False
        if req.status == "waiting":
            if req is self.chunked:
                self.chunked = None
            with contextlib.suppress(ValueError):
                self.waiting.remove(req)
            message = "Abort in waiting queue" if req.kv_len == 0 else message
        else:
            self.running.remove(req)
        self._release(req, cache=True)
        self.stats.num_aborted += 1
        self._finish(req, {"type": "abort", "message": message})
        return True

    def abort_all(self) -> int:
        """Abort every request in flight; returns how many."""
        return sum(self.abort(rid) for rid in list(self.by_rid))

    def flush_cache(self) -> bool:
        """Clear the radix cache unless requests are in flight (SGLang refuses then)."""
        if self.running or self.waiting or self.chunked:
            return False
        self.cache.reset()
        return True

    # ----- the loop -----

    def start(self) -> None:
        """Start the scheduler loop on the running event loop."""
        self.v = self.clock.now()
        self._tp_since = self.v
        self._task = asyncio.get_running_loop().create_task(self.run(), name="sglang-sim-scheduler")

    async def stop(self) -> None:
        """Stop the loop (and close the trace)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.trace is not None:
            self.trace.close()

    @property
    def alive(self) -> bool:
        """Whether the loop runs (a crashed loop fails health checks, as a dead GPU process would)."""
        return self._task is not None and not self._task.done()

    async def run(self) -> None:
        """Schedule batches forever: prefill first when there is admissible work, else one decode step."""
        while True:
            if not self.waiting and not self.running and self.chunked is None:
                self._work.clear()
                await self._work.wait()
                self.v = max(self.v, self.clock.now())
                continue
            batch = self._plan_prefill()
            if batch:
                await self._advance(self.timing.prefill_s(sum(n for _, n in batch)))
                self._complete_prefill(batch)
            elif self.running:
                batch_reqs = self._plan_decode()
                await self._advance(self.timing.decode_s(len(batch_reqs)))
                self._complete_decode(batch_reqs)
            else:  # only held (stalled) or unfittable requests wait: idle until something changes
                self._work.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work.wait(), timeout=self._next_hold_delay())
                self.v = max(self.v, self.clock.now())
            self._flush()

    def _next_hold_delay(self) -> float:
        now = time.monotonic()
        holds = [r.hold_until_real - now for r in self.waiting if r.hold_until_real > now]
        return max(0.001, min(holds)) if holds else 0.05

    async def _advance(self, duration: float) -> None:
        self.v += duration * self.faults.slowdown
        delay = self.clock.real_delay(self.v)
        if delay > 0:
            await asyncio.sleep(delay)
            return
        await asyncio.sleep(0)  # never starve the HTTP side, even when behind
        lag = self.clock.now() - self.v
        if lag > self._max_lag_v:  # the process is too slow for this speed-up: skip ahead, count it
            self.v = self.clock.now()
            self.stats.lag_skips += 1

    # ----- prefill -----

    def _urgency(self, req: Request) -> int:
        """Larger is served first: the priority, or its negation with low values first."""
        return -req.priority if self.config.schedule_low_priority_values_first else req.priority

    def _order_waiting(self) -> None:
        """FCFS as queued; with priority scheduling the most urgent first; with lpm (while at most 128
        wait) the longest cached prefix first, after priority. The sort is stable: FCFS within a key."""
        lpm = self.config.schedule_policy == "lpm" and len(self.waiting) <= LPM_MAX_QUEUE
        priority = self.config.enable_priority_scheduling
        if not (lpm or priority):
            return
        hits = {id(r): self.cache.peek_prefix_len(r.sequence()[:-1]) for r in self.waiting} if lpm else {}
        self.waiting = deque(
            sorted(
                self.waiting,
                key=lambda r: (-self._urgency(r) if priority else 0, -hits.get(id(r), 0)),
            )
        )

    def _preempt_for_priority(self) -> None:
        """With priority scheduling, a waiting request that finds every running slot taken sends the
        least urgent running request back to the queue, if it is more urgent by more than the threshold
        (SGLang's priority preemption). The preempted request keeps its prefix in the radix cache and
        resumes later, like a retraction."""
        if not (self.config.enable_priority_scheduling and self.waiting and self.running):
            return
        if len(self.running) < self.config.max_running_requests:
            return
        self._order_waiting()
        head = self.waiting[0]
        candidates = [r for r in self.running if r is not self.chunked]
        if not candidates:
            return
        victim = min(candidates, key=lambda r: (self._urgency(r), -r.arrival))
        threshold = self.config.priority_scheduling_preemption_threshold
        if self._urgency(head) - self._urgency(victim) <= threshold:
            return
        self.running.remove(victim)
        self._send_back(victim, front=False)
        self._order_waiting()

    def _plan_prefill(self) -> list[tuple[Request, int]]:
        """Pick this step's prefill work: (request, uncached tokens to compute now)."""
        budget = min(self.config.chunked_prefill_size, self.config.max_prefill_tokens)
        batch: list[tuple[Request, int]] = []
        if self.chunked is not None:
            req = self.chunked
            chunk = min(req.fill_len - req.kv_len, budget)
            if not self._ensure_free(chunk):
                if not self.running:  # nothing will ever free memory for it
                    self.chunked = None
                    self._release(req, cache=True)
                    self._finish(req, {"type": "abort", "message": "Out of memory: the KV cache is full."})
                return []  # decode must free memory first
            self._allocate(req, chunk)
            batch.append((req, chunk))
            budget -= chunk
            if req.kv_len < req.fill_len:
                return batch
            self.chunked = None
        self._preempt_for_priority()
        if not self.waiting or len(self.running) >= self.config.max_running_requests:
            return batch
        self._order_waiting()
        reserved = sum(r.remaining_reservation() for r in self.running) * self.new_token_ratio
        now_real = time.monotonic()
        admitted = 0
        for req in list(self.waiting):
            if budget <= 0 or len(self.running) + len(batch) >= self.config.max_running_requests:
                break
            if req.hold_until_real > now_real:
                continue
            self._match(req)
            need = req.fill_len - req.kv_len
            chunk = min(need, budget)
            # An idle server admits the head request whatever its reservation, as SGLang does.
            idle = not self.running and not batch
            extra = 0.0 if idle else req.remaining_reservation() * self.new_token_ratio
            room = self.available() + self.cache.evictable_size - reserved
            if chunk + extra > room or not self._ensure_free(chunk):
                self._unmatch(req)
                break  # FCFS: later requests wait behind this one, as in SGLang
            reserved += extra
            self.waiting.remove(req)
            self._first_schedule(req)
            self._allocate(req, chunk)
            batch.append((req, chunk))
            budget -= chunk
            admitted += 1
            if req.kv_len < req.fill_len:
                self.chunked = req
                break
        if admitted:
            new = [r for r, _ in batch if r.fill_len == len(r.prompt_ids) and r.retractions == 0]
            total = sum(len(r.prompt_ids) for r in new)
            if total:
                self.stats.last_batch_hit_rate = sum(r.cached_tokens for r in new) / total
        return batch

    def _match(self, req: Request) -> None:
        seq = req.sequence()
        req.fill_len = len(seq)
        if self.config.disable_radix_cache:
            req.node, req.tree_len, req.kv_len = None, 0, 0
            return
        # The last token is never a hit: its forward pass yields the next token's logits.
        match = self.cache.match_prefix(seq[:-1])
        self.cache.inc_lock_ref(match.node)
        req.node, req.tree_len, req.kv_len = match.node, match.length, match.length

    def _unmatch(self, req: Request) -> None:
        if req.node is not None:
            self.cache.dec_lock_ref(req.node)
        req.node, req.tree_len, req.kv_len = None, 0, 0

    def _first_schedule(self, req: Request) -> None:
        if req.scheduled_once:
            return
        req.scheduled_once = True
        req.cached_tokens = req.kv_len
        self.stats.queue_time.observe(max(0.0, self.v - req.arrival))
        self.stats.cached_tokens += req.cached_tokens
        self.stats.prompt_tokens += len(req.prompt_ids)

    def _allocate(self, req: Request, tokens: int) -> None:
        req.kv_len += tokens
        self.private_tokens += tokens

    def _complete_prefill(self, batch: list[tuple[Request, int]]) -> None:
        for req, _ in batch:
            if req.finished or req.kv_len < req.fill_len:
                continue
            self._cache_unfinished(req)
            if not req.plan.tokens:  # max_new_tokens=0: prefill only
                self._release(req, cache=True)
                self._finish(req, req.plan.finish_reason)
                continue
            req.status = "running"
            self.running.append(req)
            self._emit_token(req)

    def _cache_unfinished(self, req: Request) -> None:
        """Insert a prefilled prompt into the tree so concurrent requests hit it (cache_unfinished_req)."""
        if self.config.disable_radix_cache:
            return
        result = self.cache.insert(req.sequence()[: req.kv_len])
        owned = self.cache.page_aligned(req.kv_len)
        self.cache.inc_lock_ref(result.node)
        if req.node is not None:
            self.cache.dec_lock_ref(req.node)
        self.private_tokens -= owned - req.tree_len
        req.node, req.tree_len = result.node, owned

    # ----- decode -----

    def _plan_decode(self) -> list[Request]:
        if not self._ensure_free(len(self.running)):
            self._retract()
        for req in self.running:
            self._allocate(req, 1)  # the KV of the token sampled last step
        self.new_token_ratio = max(MIN_NEW_TOKEN_RATIO, self.new_token_ratio - NEW_TOKEN_RATIO_DECAY)
        return list(self.running)

    def _retract(self) -> None:
        """Out of KV: send requests back to the queue (fewest outputs, then longest prompt, first)."""
        self.running.sort(key=lambda r: (r.num_output, -len(r.prompt_ids)), reverse=True)
        while self.running and not self._ensure_free(len(self.running)):
            if len(self.running) == 1:  # one request alone does not fit: SGLang errors; end it
                req = self.running.pop()
                self._release(req, cache=True)
                self._finish(req, {"type": "abort", "message": "Out of memory: the KV cache is full."})
                break
            self._send_back(self.running.pop(), front=True)
        self.new_token_ratio = INIT_NEW_TOKEN_RATIO

    def _send_back(self, req: Request, *, front: bool) -> None:
        """A running request returns to the queue (retracted or preempted): its KV is freed, its
        computed prefix stays in the radix cache, and it is prefilled again when admitted."""
        self._release(req, cache=True)
        req.status = "waiting"
        req.retractions += 1
        self.stats.num_retractions += 1
        if front:
            self.waiting.appendleft(req)
        else:
            self.waiting.append(req)

    def _complete_decode(self, batch: list[Request]) -> None:
        step = self.v
        produced = 0
        for req in batch:
            if req.finished:
                continue
            produced += 1
            self._emit_token(req)
        if produced:
            self.stats.itl.observe(self.timing.decode_s(len(batch)) * self.faults.slowdown, produced)
        self.step_count += 1
        self._tp_tokens += produced
        self._tp_steps += 1
        if self._tp_steps >= THROUGHPUT_WINDOW_STEPS:
            elapsed = step - self._tp_since
            self.stats.gen_throughput = self._tp_tokens / elapsed if elapsed > 0 else 0.0
            self._tp_tokens, self._tp_steps, self._tp_since = 0, 0, step

    # ----- tokens out -----

    def _emit_token(self, req: Request) -> None:
        req.num_output += 1
        self.stats.generation_tokens += 1
        if req.first_token_at is None:
            req.first_token_at = self.v
            self.stats.ttft.observe(self.v - req.arrival)
            req.event.set()  # the first token goes out at once: it is what TTFT measures
            req.last_notified = req.num_output
        if req.num_output >= len(req.plan.tokens):
            self.running.remove(req)
            self._release(req, cache=True)
            self._finish(req, req.plan.finish_reason)
        elif req.num_output - req.last_notified >= self.config.stream_interval:
            self._dirty.add(req)

    def _flush(self) -> None:
        now = time.monotonic()
        if self._dirty and now - self._last_flush >= self._emit_interval:
            for req in self._dirty:
                req.last_notified = req.num_output
                req.event.set()
            self._dirty.clear()
            self._last_flush = now

    def _release(self, req: Request, cache: bool) -> None:
        """Give back a request's KV; its computed tokens go into the tree (cache_finished_req)."""
        if req.node is not None and cache and not self.config.disable_radix_cache and req.kv_len:
            self.cache.insert(req.sequence()[: req.kv_len])
        if req.node is not None:
            self.cache.dec_lock_ref(req.node)
        self.private_tokens -= req.kv_len - req.tree_len
        req.node, req.tree_len, req.kv_len = None, 0, 0

    def _finish(self, req: Request, reason: FinishReason) -> None:
        req.status = "finished"
        req.finish_reason = reason
        req.finished_at = max(self.v, req.arrival)
        self.by_rid.pop(req.rid, None)
        self._dirty.discard(req)
        self.stats.num_requests += 1
        self.stats.e2e.observe(req.finished_at - req.arrival)
        if self.trace is not None:
            self.trace.write(
                TracedRequest(
                    rid=req.rid,
                    arrival=self.clock.wall_time(req.arrival),
                    finished=self.clock.wall_time(req.finished_at),
                    finish=str(reason.get("type")),
                    prompt_ids=req.prompt_ids,
                    output_ids=req.plan.tokens[: req.num_output],
                )
            )
        req.event.set()

    def snapshot(self) -> dict[str, Any]:
        """Scheduler state for GET /sim/stats."""
        s = self.stats
        return {
            "virtual_time_s": round(self.v, 6),
            "running": len(self.running),
            "waiting": len(self.waiting),
            "chunked_prefill": self.chunked.rid if self.chunked else None,
            "max_total_tokens": self.config.max_total_tokens,
            "used_tokens": self.used_tokens,
            "cache_tokens": self.cache.total_size,
            "cache_evictable_tokens": self.cache.evictable_size,
            "cache_nodes": self.cache.node_count(),
            "private_tokens": self.private_tokens,
            "decode_steps": self.step_count,
            "new_token_ratio": round(self.new_token_ratio, 4),
            "prompt_tokens": s.prompt_tokens,
            "cached_tokens": s.cached_tokens,
            "generation_tokens": s.generation_tokens,
            "requests_finished": s.num_requests,
            "requests_aborted": s.num_aborted,
            "requests_rejected": s.num_rejected,
            "retractions": s.num_retractions,
            "evicted_tokens": s.num_evicted_tokens,
            "lag_skips": s.lag_skips,
            "gen_throughput": round(s.gen_throughput, 2),
        }
