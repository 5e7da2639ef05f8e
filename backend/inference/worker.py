"""One SGLang worker as this replica sees it: health, capacity, load, and what its cache is doing."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

# How long /get_load figures stand in for the fleet-wide load before this replica's own count wins.
REPORTED_LOAD_FRESH_S = 5.0
# Window over which a worker's cache turnover (tokens inserted per second) is measured.
TURNOVER_WINDOW_S = 60.0


@dataclass(eq=False)
class CircuitBreaker:
    """Stops sending to a worker whose requests keep failing, then lets one request test it."""

    failures_to_open: int = 5
    cooldown_s: float = 10.0
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False

    def allows(self, now: float) -> bool:
        """Whether a request may go to the worker now. Only a question: readiness, capacity and routing
        all ask it, and only ``dispatched`` spends the half-open breaker's one test request (had asking
        spent it, a /readyz probe would have left the breaker open for good with nothing sent)."""
        if self.opened_at is None:
            return True
        return now - self.opened_at >= self.cooldown_s and not self.probing

    def dispatched(self) -> None:
        """A request was sent: while open, it is the one that tests the worker."""
        if self.opened_at is not None:
            self.probing = True

    def succeeded(self) -> None:
        self.failures, self.opened_at, self.probing = 0, None, False

    def failed(self, now: float) -> None:
        self.failures += 1
        if self.probing or self.failures >= self.failures_to_open:
            self.opened_at, self.probing = now, False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.probing else "open"


@dataclass(eq=False)
class Worker:
    url: str
    model_id: str
    # --- health (from /health, with thresholds) and requests (the circuit breaker) ---
    healthy: bool = True
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    # --- capacity (from /server_info) ---
    max_running: int = 32
    max_total_tokens: int = 0
    prefill_tokens_per_s: float = 0.0  # 0: unknown, the policy's default applies
    # --- load ---
    in_flight: int = 0  # turns this replica is streaming from it
    reported_load: int = 0  # running + waiting, fleet-wide, from /get_load
    reported_waiting: int = 0
    reported_at: float = float("-inf")
    pending_prefill_tokens: float = 0.0  # uncached tokens sent here that have not produced a token yet
    last_dispatch_at: float = 0.0
    # --- what its cache is doing ---
    warm: bool = False  # it has reported a cache hit on the shared (system) prefix
    affinity_accuracy: float = 1.0  # how much of the predicted conversation prefix really hit
    inserted: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)
    # Fleet-wide tokens entering its cache per second, from its /metrics (0: unknown).
    turnover_tokens_per_s: float = 0.0
    # --- totals for /v1/admin/fleet ---
    prompt_tokens: int = 0
    cached_tokens: int = 0
    decisions: collections.Counter[str] = field(default_factory=collections.Counter)
    removed: bool = False

    def available(self, now: float) -> bool:
        return self.healthy and not self.removed and self.breaker.allows(now)

    def load(self, now: float) -> float:
        """Requests on the worker: SGLang's own count when fresh (it includes other replicas' turns),
        never less than what this replica alone has sent."""
        if now - self.reported_at <= REPORTED_LOAD_FRESH_S:
            return max(self.in_flight, self.reported_load)
        return self.in_flight

    def running_capacity(self, now: float) -> float:
        """Requests it can run at once: max_running, unless it is queueing with fewer running (its KV
        memory is full first), in which case what it runs now is its capacity."""
        if now - self.reported_at <= REPORTED_LOAD_FRESH_S and self.reported_waiting > 0:
            return float(max(1, min(self.max_running, self.reported_load - self.reported_waiting)))
        return float(self.max_running)

    def record_insertion(self, now: float, tokens: int) -> None:
        """Tokens a finished request added to the cache (its uncached prompt and its output)."""
        self.inserted.append((now, tokens))
        while self.inserted and self.inserted[0][0] < now - TURNOVER_WINDOW_S:
            self.inserted.popleft()

    def retention_s(self, default: float) -> float:
        """How long an idle prefix survives here: LRU keeps about capacity / insertion-rate seconds.

        The rate is the worker's own (from its /metrics, so it counts every replica's traffic) or else
        what this replica has sent it."""
        if not self.max_total_tokens:
            return default
        rate = self.turnover_tokens_per_s
        if rate <= 0 and len(self.inserted) >= 2:
            span = max(1.0, self.inserted[-1][0] - self.inserted[0][0])
            rate = sum(tokens for _, tokens in self.inserted) / span
        return self.max_total_tokens / rate if rate > 0 else default

    @property
    def hit_rate(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0
