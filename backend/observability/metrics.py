"""Every Prometheus series Surge exports (besides the per-route HTTP metrics), in one place.

Names are ``surge_*``; labels stay low-cardinality (model, worker, outcome, reason), never a user or
a conversation. Each section belongs to the package named in its heading.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Latency buckets from 50 ms to 5 min: a reasoning answer's first token can take minutes in a queue.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
TOKEN_GAP_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2)

# --- the process ---
EVENT_LOOP_LAG = Histogram(
    "surge_event_loop_lag_seconds",
    "How much later than due the event loop woke a sleeping task (sampled 4 times a second): every step "
    "of every request waits about this long for the core",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

# --- chat: the turn lifecycle ---
TURNS = Counter("surge_turns_total", "Turns that ended, by outcome", ["model", "outcome"])
TURNS_STARTED = Counter("surge_turns_started_total", "Turns accepted", ["model"])
TIME_TO_FIRST_TOKEN = Histogram(
    "surge_time_to_first_token_seconds",
    "From accepting a turn to its first reasoning or content token",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
TIME_PER_OUTPUT_TOKEN = Histogram(
    "surge_time_per_output_token_seconds",
    "Mean gap between output tokens of a finished turn",
    ["model"],
    buckets=TOKEN_GAP_BUCKETS,
)
ACTIVE_STREAMS = Gauge("surge_active_streams", "Open client streams", ["transport"])
UPSTREAM_RETRIES = Counter(
    "surge_upstream_retries_total", "Turns retried on another worker before their first token", ["model"]
)
TURNS_RECOVERED = Counter(
    "surge_turns_recovered_total", "Turns whose replica died, by what the survivor did", ["action"]
)
STREAM_FLUSHES = Counter(
    "surge_stream_flushes_total", "Coalescing windows that sealed new events (one publication each)"
)
STREAM_FALLBACKS = Counter(
    "surge_stream_fallbacks_total", "Readers that lost the shared event log and read the database instead"
)
EVENT_LOG_FAILURES = Counter(
    "surge_event_log_failures_total", "Publications to the shared event log (Redis) that failed and wait"
)
EVENT_LOG_REPUBLISHED = Counter(
    "surge_event_log_republished_total", "Turn logs Redis had lost (a restart) and that were published again"
)
EVENT_LOG_DROPPED = Counter(
    "surge_event_log_dropped_total",
    "Ended turns whose log was never published (Redis away too long); readers replay them from the database",
)

# --- the database ---
DB_STATEMENTS = Counter(
    "surge_db_statements_total",
    "SQL statements sent to the database (an executemany counts once; transactions' BEGIN and COMMIT "
    "do not), by verb: SELECT, INSERT, UPDATE, ...",
    ["verb"],
)

# --- push: devices, the outbox and FCM ---
PUSH_SENDS = Counter(
    "surge_push_sends_total",
    "Pushes handed to FCM (or logged without credentials), by result: sent, logged, or FCM's error code",
    ["result"],
)
PUSH_AUTH_ERRORS = Counter(
    "surge_push_auth_errors_total",
    "FCM refused Surge's or the APNs/web push credentials (alert on any increase): nothing is sent",
    ["code"],
)
PUSH_TOKENS_DELETED = Counter(
    "surge_push_tokens_deleted_total", "Devices removed because FCM called their token dead", ["reason"]
)
PUSH_RETRIES = Counter(
    "surge_push_retries_total", "Pushes scheduled again after a transient FCM error", ["code"]
)
PUSH_DROPPED = Counter(
    "surge_push_dropped_total",
    "Pushes given up without sending: expired, device_moved, gave_up (retries exhausted), rejected",
    ["reason"],
)
PUSH_DEFERRED = Counter(
    "surge_push_deferred_total", "Pushes held back by the per-device rate limit until its window frees"
)
PUSH_OUTBOX_BACKLOG = Gauge(
    "surge_push_outbox_backlog",
    "Pushes waiting: finished answers not yet expanded to devices, and per-device pushes not yet sent",
    ["stage"],
)
PUSH_BATCH_SECONDS = Histogram(
    "surge_push_batch_seconds", "Time to send one batch to FCM", buckets=LATENCY_BUCKETS
)

# --- inference: the worker pool and routing ---
ROUTING_DECISIONS = Counter(
    "surge_routing_decisions_total",
    "Turns routed, by worker, policy and the reason for the choice",
    ["model", "worker", "policy", "reason"],
)
WORKER_IN_FLIGHT = Gauge(
    "surge_worker_in_flight", "Turns this replica is streaming from the worker", ["model", "worker"]
)
WORKER_HEALTHY = Gauge(
    "surge_worker_healthy", "1 if the worker passes its health checks", ["model", "worker"]
)
WORKER_PROMPT_TOKENS = Counter(
    "surge_worker_prompt_tokens_total", "Prompt tokens of turns the worker finished", ["model", "worker"]
)
WORKER_CACHED_TOKENS = Counter(
    "surge_worker_cached_tokens_total",
    "Prompt tokens the worker served from its prefix cache (hit rate = cached / prompt)",
    ["model", "worker"],
)

# --- admission: rate limits, the fair queue and the degrade ladder ---
RATE_LIMIT_DECISIONS = Counter(
    "surge_rate_limit_decisions_total",
    "Requests refused by a rate limit (limited), or let through because the limiter was down",
    ["rule", "decision"],
)
ADMISSION_DECISIONS = Counter(
    "surge_admission_decisions_total",
    "What admission did with each turn: admitted, queued, degraded, shed or rejected, and why",
    ["model", "decision", "reason"],
)
QUEUE_LENGTH = Gauge("surge_queue_length", "Turns waiting for capacity in this replica", ["model"])
QUEUE_WAIT = Histogram(
    "surge_queue_wait_seconds",
    "Time turns waited for capacity before starting (or giving up)",
    buckets=LATENCY_BUCKETS,
)
DEGRADE_LEVEL = Gauge(
    "surge_degrade_level",
    "The overload policy's level: 0 normal, 1 shorter answers, 2 thinking off (free), 3 sign-ups paused, "
    "4 free turns that would wait shed",
)

# --- openai_api: the OpenAI-compatible API ---
OPENAI_REQUESTS = Counter(
    "surge_openai_requests_total",
    "Requests of the OpenAI-compatible API that were admitted, by route, model and outcome",
    ["route", "model", "outcome"],
)
