"""Each routing policy's decisions on constructed situations: ties, imbalance, an unhealthy worker, a
worker that evicted a conversation, a worker that joins."""

from __future__ import annotations

import uuid

import pytest

from backend.inference.policies import (
    CacheAware,
    LeastLoad,
    Outcome,
    PredictedTtft,
    PreviousTurn,
    RoundRobin,
    RouteRequest,
    TtftConfig,
)
from backend.inference.pool import WorkerPool
from backend.inference.worker import Worker
from backend.settings import InferenceSettings, ModelSpec

NOW = 10_000.0


def workers(*urls: str, max_running: int = 32) -> list[Worker]:
    return [Worker(url=url, model_id="m", max_running=max_running, max_total_tokens=150_000) for url in urls]


def request(chars: int = 8000, previous: PreviousTurn | None = None, text: str = "") -> RouteRequest:
    return RouteRequest(
        model_id="m", conversation_id=uuid.uuid4(), prompt_chars=chars, prompt_text=text, previous=previous
    )


def previous_on(
    worker: str, *, prompt_tokens: int = 4000, answer_tokens: int = 300, age_s: float = 10.0
) -> PreviousTurn:
    return PreviousTurn(
        worker=worker,
        prompt_tokens=prompt_tokens,
        answer_tokens=answer_tokens,
        thinking=False,
        finished_at=NOW - age_s,
    )


# --- round robin and least load ---
def test_round_robin_takes_each_worker_in_turn():
    policy, fleet = RoundRobin(), workers("a", "b", "c")
    assert [policy.choose(request(), fleet, NOW).worker.url for _ in range(6)] == [
        "a",
        "b",
        "c",
        "a",
        "b",
        "c",
    ]


def test_least_load_picks_the_smallest_share_of_capacity():
    fleet = workers("a", "b")
    fleet[0].in_flight, fleet[1].in_flight = 10, 4
    fleet[1].max_running = 8  # 4/8 = 0.5 > 10/32
    assert LeastLoad().choose(request(), fleet, NOW).worker.url == "a"


def test_least_load_shares_ties():
    policy, fleet = LeastLoad(), workers("a", "b")
    assert {policy.choose(request(), fleet, NOW).worker.url for _ in range(4)} == {"a", "b"}


# --- sglang-router's cache_aware ---
def test_cache_aware_follows_the_prefix_it_sent():
    policy, fleet = CacheAware(), workers("a", "b")
    first = policy.choose(request(text="SYSTEM user: tell me about tides"), fleet, NOW).worker
    first.in_flight += 1
    again = policy.choose(
        request(text="SYSTEM user: tell me about tides assistant: ... user: more"), fleet, NOW
    )
    assert again.worker is first and again.reason == "prefix_match"


def test_cache_aware_sends_a_low_match_to_the_least_loaded_worker():
    policy, fleet = CacheAware(), workers("a", "b")
    fleet[0].in_flight = 5
    decision = policy.choose(request(text="something nobody sent before"), fleet, NOW)
    assert decision.worker.url == "b" and decision.reason == "low_match"


def test_cache_aware_balances_only_past_both_thresholds():
    policy, fleet = CacheAware(), workers("a", "b")
    policy.choose(
        request(text="conversation X turn 1"), fleet, NOW
    )  # tree: "conversation X" -> a (least loaded tie)
    holder = next(w for w in fleet if policy.trees["m"].match("conversation X turn 1")[1] == w.url)
    other = next(w for w in fleet if w is not holder)
    holder.in_flight, other.in_flight = 60, 0  # 60 - 0 is not > 64: still affinity
    assert policy.choose(request(text="conversation X turn 1 more"), fleet, NOW).worker is holder
    holder.in_flight = 70  # > 64 and > 1.5 x 0: imbalanced
    decision = policy.choose(request(text="conversation X turn 1 more"), fleet, NOW)
    assert decision.worker is other and decision.reason == "imbalanced"


# --- Surge's predicted-TTFT policy ---
def test_ttft_on_an_idle_fleet_breaks_ties_by_load_then_least_recently_used():
    policy, fleet = PredictedTtft(), workers("a", "b", "c")
    fleet[0].in_flight = 1
    fleet[1].last_dispatch_at, fleet[2].last_dispatch_at = 5.0, 1.0
    decision = policy.choose(request(), fleet, NOW)
    assert decision.worker.url == "c" and decision.reason == "lowest_ttft"


def test_ttft_keeps_a_conversation_on_the_worker_that_holds_its_prefix():
    policy, fleet = PredictedTtft(), workers("a", "b")
    decision = policy.choose(request(chars=18_000, previous=previous_on("b")), fleet, NOW)
    assert decision.worker.url == "b" and decision.reason == "affinity"
    assert decision.estimates["b"] < decision.estimates["a"]


def test_ttft_moves_a_conversation_off_a_worker_with_a_long_prefill_backlog():
    policy, fleet = PredictedTtft(), workers("a", "b")
    fleet[1].pending_prefill_tokens = 200_000  # ten seconds of prefill queued there
    decision = policy.choose(request(chars=18_000, previous=previous_on("b")), fleet, NOW)
    assert decision.worker.url == "a" and decision.reason == "moved_cheaper"


def test_ttft_expects_nothing_cached_on_a_worker_whose_cache_has_long_since_turned_over():
    policy, fleet = PredictedTtft(), workers("a", "b")
    busy = fleet[1]
    busy.turnover_tokens_per_s = 15_000.0  # 150,000 tokens of cache turned over every 10 s
    fresh = policy.expected_cached(request(previous=previous_on("b", age_s=2)), busy, NOW)
    stale = policy.expected_cached(request(previous=previous_on("b", age_s=120)), busy, NOW)
    assert fresh > 3000 and stale < 10
    fleet[0].last_dispatch_at = 0.0
    fleet[1].in_flight = 3
    assert policy.choose(request(previous=previous_on("b", age_s=120)), fleet, NOW).worker.url == "a"


def test_ttft_learns_from_cached_tokens_that_a_worker_evicted_more_than_predicted():
    policy, fleet = PredictedTtft(), workers("a", "b")
    route = request(chars=16_000, previous=previous_on("b", age_s=5))
    decision = policy.choose(route, fleet, NOW)
    before = policy.expected_cached(route, fleet[1], NOW)
    for _ in range(10):
        policy.observe(
            route,
            decision,
            Outcome(prompt_tokens=4300, cached_tokens=0, completion_tokens=300, duration_s=5),
            NOW,
        )
    assert fleet[1].affinity_accuracy < 0.5
    assert policy.expected_cached(route, fleet[1], NOW) < before / 2


def test_ttft_learns_the_shared_prefix_and_the_token_ratio_from_usage():
    policy, fleet = PredictedTtft(TtftConfig(tokens_per_char=1.0)), workers("a")
    route = request(chars=10_000)
    decision = policy.choose(route, fleet, NOW)
    for _ in range(50):
        policy.observe(
            route,
            decision,
            Outcome(prompt_tokens=2500, cached_tokens=1500, completion_tokens=10, duration_s=1),
            NOW,
        )
    assert policy.tokens_per_char["m"] == pytest.approx(0.25, rel=0.05)
    assert policy.shared_prefix_tokens["m"] == pytest.approx(1500, rel=0.05)
    assert fleet[0].warm


def test_ttft_queues_behind_full_workers():
    policy, fleet = PredictedTtft(), workers("a", "b", max_running=4)
    fleet[0].in_flight = 6  # full, two waiting
    decision = policy.choose(request(previous=previous_on("a")), fleet, NOW)
    assert decision.worker.url == "b"


# --- the pool around the policies ---
def pool_of(*urls: str, policy: str = "ttft") -> WorkerPool:
    settings = InferenceSettings(
        models=[ModelSpec(id="m", display_name="M", workers=list(urls))],
        routing_policy=policy,  # type: ignore[arg-type]
    )
    return WorkerPool.from_settings(settings, clock=lambda: NOW)


def test_an_unhealthy_worker_gets_no_turns():
    pool = pool_of("http://a", "http://b", policy="round_robin")
    pool.workers["m"][0].healthy = False
    chosen = set()
    for _ in range(4):
        dispatch = pool.dispatch(request())
        assert dispatch is not None
        chosen.add(dispatch.worker.url)
        dispatch.release(None)
    assert chosen == {"http://b"}


def test_no_available_worker_means_no_dispatch():
    pool = pool_of("http://a")
    pool.workers["m"][0].healthy = False
    assert pool.dispatch(request()) is None


def test_failures_open_the_circuit_and_a_probe_closes_it():
    clock = {"now": NOW}
    pool = pool_of("http://a", "http://b", policy="round_robin")
    pool.clock = lambda: clock["now"]
    broken = pool.workers["m"][0]
    for _ in range(broken.breaker.failures_to_open):
        dispatch = pool.dispatch(request(), exclude=frozenset({"http://b"}))
        assert dispatch is not None and dispatch.worker is broken
        dispatch.release(None, worker_failed=True)
    assert broken.breaker.state == "open"
    assert pool.dispatch(request(), exclude=frozenset({"http://b"})) is None
    clock["now"] += broken.breaker.cooldown_s
    probe = pool.dispatch(request(), exclude=frozenset({"http://b"}))
    assert probe is not None and broken.breaker.state == "half_open"
    probe.release(Outcome(prompt_tokens=10, cached_tokens=0, completion_tokens=5, duration_s=1))
    assert broken.breaker.state == "closed"


def test_asking_whether_a_worker_is_available_does_not_spend_its_test_request():
    """Readiness probes and admission's capacity ask about every worker all the time; only a request sent
    makes the open breaker half-open, else the worker was never tried again."""
    clock = {"now": 1000.0}
    pool = pool_of("http://a", "http://b", policy="round_robin")
    pool.clock = lambda: clock["now"]
    broken, other = pool.workers["m"]
    for _ in range(broken.breaker.failures_to_open):
        dispatch = pool.dispatch(request(), exclude=frozenset({"http://b"}))
        assert dispatch is not None and dispatch.worker is broken
        dispatch.release(None, worker_failed=True)
    clock["now"] += broken.breaker.cooldown_s
    for _ in range(3):
        assert broken.available(clock["now"])
        assert pool.capacity("m") >= 0
    assert broken.breaker.state == "open"
    # A turn routed to the other worker does not use up the broken one's test either.
    elsewhere = pool.dispatch(request(), exclude=frozenset({"http://a"}))
    assert elsewhere is not None and elsewhere.worker is other
    probe = pool.dispatch(request(), exclude=frozenset({"http://b"}))
    assert probe is not None and probe.worker is broken and broken.breaker.state == "half_open"
    assert not broken.available(clock["now"])  # one test request at a time
    probe.release(Outcome(prompt_tokens=10, cached_tokens=0, completion_tokens=5, duration_s=1))
    assert broken.breaker.state == "closed" and broken.available(clock["now"])


def test_a_worker_that_joins_gets_turns_and_one_that_leaves_finishes_its_own():
    pool = pool_of("http://a")
    running = pool.dispatch(request())
    assert running is not None
    pool.reconcile([ModelSpec(id="m", display_name="M", workers=["http://b"])])
    leaving = pool.workers["m"][0] if pool.workers["m"][0].url == "http://a" else pool.workers["m"][1]
    assert leaving.removed and leaving.in_flight == 1
    for _ in range(3):
        dispatch = pool.dispatch(request())
        assert dispatch is not None and dispatch.worker.url == "http://b"
        dispatch.release(None)
    running.release(None)
    assert [w.url for w in pool.workers["m"]] == ["http://b"]


def test_capacity_counts_available_workers_only():
    pool = pool_of("http://a", "http://b")
    pool.workers["m"][1].healthy = False
    assert pool.capacity("m") == 32


def test_capacity_is_the_healthy_workers_slots_unless_the_model_says_otherwise():
    from backend.inference.pool import WorkerPool
    from backend.settings import InferenceSettings, ModelSpec

    direct = ModelSpec(id="m", display_name="M", workers=["http://a", "http://b"])
    pool = WorkerPool.from_settings(InferenceSettings(models=[direct]))
    a, b = pool.workers["m"]
    a.max_running, b.max_running = 32, 16
    assert pool.capacity("m") == 48
    # b reports a queue while running only 10: its KV memory is full, 10 is what it takes.
    b.reported_at, b.reported_load, b.reported_waiting = pool.clock(), 14, 4
    assert pool.capacity("m") == 42
    b.healthy = False
    assert pool.capacity("m") == 32
    # One sglang-router in front of four servers: its /server_info describes only one of them.
    routed = ModelSpec(id="m", display_name="M", workers=["http://router"], max_running=128)
    pool.reconcile([routed])
    assert pool.capacity("m") == 128
    pool.workers["m"][0].healthy = False
    assert pool.capacity("m") == 0
