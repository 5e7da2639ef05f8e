"""Routing policies: which worker gets a turn. One interface; four policies.

- ``round_robin``: each worker in turn.
- ``least_load``: the worker running the smallest share of its capacity.
- ``cache_aware``: sglang-router's policy, re-implemented for comparison (SGLANG.md): a character radix
  tree of request texts per worker; prefix affinity unless the load is badly imbalanced.
- ``ttft`` (Surge's default): the worker with the lowest predicted time to first token, i.e. the
  prefill waiting there plus the prefill of this prompt's tokens *not* cached there plus any queueing
  for a running slot. What a worker still caches is predicted from what Surge knows and a router does
  not: which worker served the conversation's last turn, how long that prefix was, how long ago, how
  fast the worker's cache turns over, and (from every response's ``cached_tokens``) how often such
  predictions held.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from backend.inference.prefix_tree import PrefixTree
from backend.inference.worker import Worker


@dataclass(frozen=True, slots=True)
class PreviousTurn:
    """The conversation's last answer on this branch: where it ran and what it left in that cache."""

    worker: str
    prompt_tokens: int
    answer_tokens: int
    thinking: bool
    finished_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class RouteRequest:
    model_id: str
    conversation_id: object
    prompt_chars: int
    # The prompt's message contents joined by spaces: what sglang-router matches on for chat.
    prompt_text: str = ""
    previous: PreviousTurn | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    worker: Worker
    reason: str
    # Per-worker figures the choice was made on, for the debug log.
    estimates: dict[str, float] = field(default_factory=dict)
    # The policy's guess of the prompt's uncached tokens on the chosen worker (pending prefill).
    uncached_tokens: float = 0.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a finished (or failed) request told us."""

    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    duration_s: float
    ok: bool = True


class RoutingPolicy(Protocol):
    name: str

    def choose(self, request: RouteRequest, candidates: Sequence[Worker], now: float) -> Decision: ...

    def observe(self, request: RouteRequest, decision: Decision, outcome: Outcome, now: float) -> None: ...


class RoundRobin:
    name = "round_robin"

    def __init__(self) -> None:
        self._counter = itertools.count()

    def choose(self, request: RouteRequest, candidates: Sequence[Worker], now: float) -> Decision:
        return Decision(candidates[next(self._counter) % len(candidates)], "rotation")

    def observe(self, request: RouteRequest, decision: Decision, outcome: Outcome, now: float) -> None:
        return None


class LeastLoad:
    name = "least_load"

    def __init__(self) -> None:
        self._counter = itertools.count()

    def choose(self, request: RouteRequest, candidates: Sequence[Worker], now: float) -> Decision:
        start = next(self._counter)  # rotate the tie-break, so equal workers share the work
        ordered = [candidates[(start + i) % len(candidates)] for i in range(len(candidates))]
        worker = min(ordered, key=lambda w: w.load(now) / w.max_running)
        return Decision(worker, "least_load", {w.url: w.load(now) / w.max_running for w in candidates})

    def observe(self, request: RouteRequest, decision: Decision, outcome: Outcome, now: float) -> None:
        return None


@dataclass
class CacheAwareConfig:
    """sglang-router's flags and defaults (``launch_router --help``, version 0.3.2)."""

    cache_threshold: float = 0.3
    balance_abs_threshold: int = 64
    balance_rel_threshold: float = 1.5
    eviction_interval_s: float = 60.0
    max_tree_size: int = 67_108_864


class CacheAware:
    """sglang-router's ``cache_aware`` policy. Load is the policy's own count of in-flight requests per
    worker; the tree learns what was *sent*, never what a worker evicted."""

    name = "cache_aware"

    def __init__(self, config: CacheAwareConfig | None = None) -> None:
        self.config = config or CacheAwareConfig()
        self.trees: dict[str, PrefixTree] = {}
        self._last_eviction = 0.0

    def choose(self, request: RouteRequest, candidates: Sequence[Worker], now: float) -> Decision:
        tree = self.trees.setdefault(request.model_id, PrefixTree())
        if now - self._last_eviction >= self.config.eviction_interval_s:
            self._last_eviction = now
            for tenant in list(tree.tenant_chars):
                tree.evict(tenant, self.config.max_tree_size)
        loads = {w.url: w.in_flight for w in candidates}
        least = min(candidates, key=lambda w: w.in_flight)
        high, low = max(loads.values()), min(loads.values())
        config = self.config
        if high - low > config.balance_abs_threshold and high > low * config.balance_rel_threshold:
            choice, reason = least, "imbalanced"
        else:
            matched, holder_url = tree.match(request.prompt_text)
            rate = matched / len(request.prompt_text) if request.prompt_text else 0.0
            holder = next((w for w in candidates if w.url == holder_url), None)
            if rate > config.cache_threshold and holder is not None:
                choice, reason = holder, "prefix_match"
            else:
                choice, reason = least, "low_match"
        tree.insert(request.prompt_text, choice.url, now)
        return Decision(choice, reason, {url: float(load) for url, load in loads.items()})

    def observe(self, request: RouteRequest, decision: Decision, outcome: Outcome, now: float) -> None:
        return None


@dataclass
class TtftConfig:
    # Uncached prompt tokens a worker prefills per second, until observations say otherwise.
    prefill_tokens_per_s: float = 20_000.0
    # Until cached_tokens feedback has taught the real ratio.
    tokens_per_char: float = 0.25
    # How long a turn occupies a running slot, until observed.
    turn_duration_s: float = 60.0
    # How long a worker's cache keeps an idle prefix when its turnover is unknown.
    default_retention_s: float = 600.0
    learning_rate: float = 0.05


class PredictedTtft:
    """Surge's default: minimise the predicted time to first token."""

    name = "ttft"

    def __init__(self, config: TtftConfig | None = None) -> None:
        self.config = config or TtftConfig()
        self.tokens_per_char: dict[str, float] = {}
        self.shared_prefix_tokens: dict[str, float] = {}  # the system prompt, as workers report it
        self.turn_duration_s: dict[str, float] = {}

    # --- predictions ---
    def prompt_tokens(self, request: RouteRequest) -> float:
        return request.prompt_chars * self.tokens_per_char.get(request.model_id, self.config.tokens_per_char)

    def expected_cached(self, request: RouteRequest, worker: Worker, now: float) -> float:
        shared = self.shared_prefix_tokens.get(request.model_id, 0.0) if worker.warm else 0.0
        previous = request.previous
        if previous is None or previous.worker != worker.url:
            return shared
        # The last turn left its prompt in this worker's cache, and its answer too unless it reasoned
        # (the template drops earlier reasoning, so the next prompt diverges where it was).
        prefix = previous.prompt_tokens + (0 if previous.thinking else previous.answer_tokens)
        age = max(0.0, now - previous.finished_at)
        retention = worker.retention_s(self.config.default_retention_s)
        still_there = math.exp(-age / retention) * worker.affinity_accuracy
        return max(shared, prefix * still_there)

    def predict(self, request: RouteRequest, worker: Worker, now: float) -> tuple[float, float]:
        """(predicted seconds to first token, predicted uncached tokens) on ``worker``."""
        uncached = max(0.0, self.prompt_tokens(request) - self.expected_cached(request, worker, now))
        rate = worker.prefill_tokens_per_s or self.config.prefill_tokens_per_s
        load = worker.load(now)
        duration = self.turn_duration_s.get(request.model_id, self.config.turn_duration_s)
        # Waiting for a running slot: requests beyond capacity each hold one for about a turn's time.
        capacity = worker.running_capacity(now)
        queueing = max(0.0, load + 1 - capacity) * duration / capacity
        return (worker.pending_prefill_tokens + uncached) / rate + queueing, uncached

    def choose(self, request: RouteRequest, candidates: Sequence[Worker], now: float) -> Decision:
        predictions = {w.url: self.predict(request, w, now) for w in candidates}
        # Ties (typical on an idle fleet) go to the less loaded worker, then the one least recently used.
        best = min(
            candidates, key=lambda w: (round(predictions[w.url][0], 4), w.load(now), w.last_dispatch_at)
        )
        previous = request.previous
        if previous is None:
            reason = "lowest_ttft"
        elif best.url == previous.worker:
            reason = "affinity"
        elif any(w.url == previous.worker for w in candidates):
            reason = "moved_cheaper"
        else:
            reason = "previous_unavailable"
        return Decision(
            best,
            reason,
            {url: round(ttft, 4) for url, (ttft, _) in predictions.items()},
            uncached_tokens=predictions[best.url][1],
        )

    # --- learning from what happened ---
    def observe(self, request: RouteRequest, decision: Decision, outcome: Outcome, now: float) -> None:
        if not outcome.ok or outcome.prompt_tokens <= 0:
            return
        model, rate = request.model_id, self.config.learning_rate
        worker = decision.worker
        if request.prompt_chars > 0:
            ratio = outcome.prompt_tokens / request.prompt_chars
            self.tokens_per_char[model] = _ewma(self.tokens_per_char.get(model), ratio, rate)
        if outcome.duration_s > 0:
            self.turn_duration_s[model] = _ewma(self.turn_duration_s.get(model), outcome.duration_s, rate)
        previous = request.previous
        if previous is None or previous.worker != worker.url:
            # Nothing of this conversation was expected here: what hit is the shared prefix.
            if outcome.cached_tokens > 0:
                worker.warm = True
                self.shared_prefix_tokens[model] = _ewma(
                    self.shared_prefix_tokens.get(model), outcome.cached_tokens, rate
                )
            return
        # An affinity turn: compare what was predicted to still be cached with what was.
        shared = self.shared_prefix_tokens.get(model, 0.0)
        prefix = previous.prompt_tokens + (0 if previous.thinking else previous.answer_tokens)
        expected = prefix * math.exp(
            -max(0.0, now - outcome.duration_s - previous.finished_at)
            / worker.retention_s(self.config.default_retention_s)
        )
        if expected > shared + 1:
            observed = (outcome.cached_tokens - shared) / (expected - shared)
            worker.affinity_accuracy = min(1.0, max(0.05, _ewma(worker.affinity_accuracy, observed, 0.2)))


def _ewma(current: float | None, value: float, rate: float) -> float:
    return value if current is None else current + rate * (value - current)


POLICIES: dict[str, type[RoutingPolicy]] = {
    "round_robin": RoundRobin,
    "least_load": LeastLoad,
    "cache_aware": CacheAware,
    "ttft": PredictedTtft,
}
