"""SGLang's Prometheus metrics (`sglang:*`, label `model_name`), on a private registry per server."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

# Bucket bounds as SGLang's metrics/collector.py declares them.
TTFT_BUCKETS = (0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400)
ITL_BUCKETS = (
    0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080, 0.100,
    0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000,
)  # fmt: skip
E2E_BUCKETS = (
    0.1,
    0.2,
    0.4,
    0.6,
    0.8,
    1,
    2,
    4,
    6,
    8,
    10,
    20,
    40,
    60,
    80,
    100,
    200,
    400,
    600,
    1200,
    1800,
    2400,
)
QUEUE_BUCKETS = (
    0.0,
    0.1,
    0.2,
    0.5,
    1,
    2,
    3,
    4,
    5,
    10,
    15,
    20,
    30,
    40,
    50,
    60,
    70,
    80,
    90,
    100,
    200,
    300,
    400,
    500,
    600,
)


@dataclass
class Histogram:
    """A cumulative histogram that can take many equal observations at once (one per decode step)."""

    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float, times: int = 1) -> None:
        """Record `value`, `times` times."""
        self.counts[bisect.bisect_left(self.bounds, value)] += times
        self.total += value * times
        self.n += times

    def buckets(self) -> list[tuple[str, float]]:
        """Prometheus `le` buckets, cumulative, ending with +Inf."""
        out, running = [], 0
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


@dataclass
class SimStats:
    """Counters and histograms the scheduler updates; gauges are read live at scrape time."""

    prompt_tokens: int = 0
    generation_tokens: int = 0
    cached_tokens: int = 0
    num_requests: int = 0
    num_aborted: int = 0
    num_retractions: int = 0
    num_evicted_tokens: int = 0
    num_rejected: int = 0
    lag_skips: int = 0
    gen_throughput: float = 0.0
    last_batch_hit_rate: float = 0.0
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    itl: Histogram = field(default_factory=lambda: Histogram(ITL_BUCKETS))
    e2e: Histogram = field(default_factory=lambda: Histogram(E2E_BUCKETS))
    queue_time: Histogram = field(default_factory=lambda: Histogram(QUEUE_BUCKETS))


@dataclass
class LiveGauges:
    """Callables returning the scheduler's current state."""

    num_running: Callable[[], int]
    num_queue: Callable[[], int]
    num_used_tokens: Callable[[], int]
    max_total_tokens: int


class SimCollector(Collector):
    """Yields SGLang's metric families from SimStats and the live gauges."""

    def __init__(self, model_name: str, stats: SimStats, gauges: LiveGauges) -> None:
        self.model_name = model_name
        self.stats = stats
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        labels, values = ["model_name"], [self.model_name]
        s, g = self.stats, self.gauges

        def gauge(name: str, doc: str, value: float) -> Metric:
            m = GaugeMetricFamily(name, doc, labels=labels)
            m.add_metric(values, value)
            return m

        def counter(name: str, doc: str, value: float) -> Metric:
            m = CounterMetricFamily(name, doc, labels=labels)
            m.add_metric(values, value)
            return m

        def histogram(name: str, doc: str, h: Histogram) -> Metric:
            m = HistogramMetricFamily(name, doc, labels=labels)
            m.add_metric(values, h.buckets(), h.total)
            return m

        used = g.num_used_tokens()
        yield gauge("sglang:num_running_reqs", "The number of running requests.", g.num_running())
        yield gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.", g.num_queue())
        yield gauge("sglang:num_used_tokens", "The number of used tokens.", used)
        yield gauge("sglang:token_usage", "The token usage.", used / g.max_total_tokens)
        yield gauge("sglang:gen_throughput", "The generation throughput (token/s).", s.gen_throughput)
        yield gauge("sglang:cache_hit_rate", "The prefix cache hit rate.", s.last_batch_hit_rate)
        yield counter("sglang:prompt_tokens", "Number of prefill tokens processed.", s.prompt_tokens)
        yield counter(
            "sglang:generation_tokens", "Number of generation tokens processed.", s.generation_tokens
        )
        yield counter("sglang:cached_tokens", "Number of cached prompt tokens.", s.cached_tokens)
        yield counter("sglang:num_requests", "Number of requests processed.", s.num_requests)
        yield histogram(
            "sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.", s.ttft
        )
        yield histogram(
            "sglang:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", s.itl
        )
        yield histogram(
            "sglang:e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds", s.e2e
        )
        yield histogram("sglang:queue_time_seconds", "Histogram of queueing time in seconds.", s.queue_time)


def make_registry(model_name: str, stats: SimStats, gauges: LiveGauges) -> CollectorRegistry:
    """A private registry (several simulators can share one process) holding the SGLang metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SimCollector(model_name, stats, gauges))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus text format."""
    return generate_latest(registry)
