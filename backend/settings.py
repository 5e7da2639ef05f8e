"""Typed settings, read once from ``SURGE_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import msgspec

Env = Literal["development", "production", "test"]

# The development JWT secret: fine on a laptop, refused in production (see ``Settings.check_production``).
INSECURE_JWT_SECRET = "surge-insecure-development-secret-change-me!"  # noqa: S105

# Secrets published as examples (infra/k8s/secrets.example.yaml shipped this one before it was emptied):
# whoever read the repository can sign access tokens with them.
PUBLISHED_JWT_SECRETS = frozenset(
    {INSECURE_JWT_SECRET, "change-me-to-at-least-32-random-characters-0123456789"}
)
JWT_SECRET_MIN_CHARS = 32
# `openssl rand -base64 36` has about 30 distinct characters and 32 random hex digits about 14; "aaaa..."
# or "abcabc..." padded to length have a handful.
JWT_SECRET_MIN_DISTINCT_CHARS = 10


def jwt_secret_problem(secret: str) -> str | None:
    """Why this secret must not sign production tokens (published, short, or low entropy); else None."""
    if secret in PUBLISHED_JWT_SECRETS or "change-me" in secret.lower():
        return "SURGE_JWT_SECRET is a published example: set a random secret (openssl rand -base64 48)"
    if len(secret) < JWT_SECRET_MIN_CHARS or len(set(secret)) < JWT_SECRET_MIN_DISTINCT_CHARS:
        return (
            f"SURGE_JWT_SECRET must be a random secret of at least {JWT_SECRET_MIN_CHARS} characters with"
            f" at least {JWT_SECRET_MIN_DISTINCT_CHARS} distinct ones (openssl rand -base64 48)"
        )
    return None


# Set, it makes firebase-admin skip ID token signature checks (for the Auth emulator): never in production.
FIREBASE_AUTH_EMULATOR_HOST = "FIREBASE_AUTH_EMULATOR_HOST"


def doc(text: str) -> msgspec.Meta:
    """A field description, shown in ``surge settings`` and the README's configuration table."""
    return msgspec.Meta(description=text)


class SettingsGroup(msgspec.Struct, kw_only=True, frozen=True):
    """One concern's settings; each field ``name`` is read from ``SURGE_{env_prefix}{NAME}``."""

    env_prefix: ClassVar[str] = ""


class ServerSettings(SettingsGroup, kw_only=True, frozen=True):
    env: Annotated[
        Env, doc("`development` (laptop defaults) or `production` (refuses insecure defaults)")
    ] = "development"
    host: Annotated[str, doc("Interface `surge serve` binds to")] = "127.0.0.1"
    port: Annotated[int, doc("Port `surge serve` listens on")] = 8000
    workers: Annotated[int, doc("Backend processes `surge serve` starts (more than one needs Redis)")] = 1
    public_url: Annotated[
        str,
        doc(
            "Base URL clients reach this service at, for share links (required in production; unset, the"
            " `surge serve` address)"
        ),
    ] = ""
    web_enabled: Annotated[
        bool, doc("Serve the web chat app at `/` (share links then open its `/s/{id}` page)")
    ] = True
    max_body_bytes: Annotated[int, doc("Largest request body accepted, in bytes (else 413)")] = 1_048_576
    log_level: Annotated[str, doc("Log level: DEBUG, INFO, WARNING or ERROR")] = "INFO"
    log_json: Annotated[bool, doc("Structured JSON logs (true) or human-readable lines (false)")] = True
    data_dir: Annotated[str, doc("Where the embedded default keeps its SQLite file and worker logs")] = (
        ".surge"
    )
    shutdown_grace_s: Annotated[
        float, doc("Seconds a stopping process lets its turns and streams finish")
    ] = 30.0


class DatabaseSettings(SettingsGroup, kw_only=True, frozen=True):
    env_prefix: ClassVar[str] = "DATABASE_"

    url: Annotated[
        str,
        doc(
            "SQLAlchemy URL: `sqlite+aiosqlite:///path` (embedded) or `postgresql+asyncpg://...` (production)"
        ),
    ] = ""
    pool_size: Annotated[int, doc("Connections kept open per backend process (PostgreSQL)")] = 10
    max_overflow: Annotated[int, doc("Extra connections allowed under burst (PostgreSQL)")] = 20
    auto_migrate: Annotated[bool, doc("Apply migrations at start-up (the embedded default does)")] = True
    echo: Annotated[bool, doc("Log every SQL statement (development only)")] = False


class RedisSettings(SettingsGroup, kw_only=True, frozen=True):
    env_prefix: ClassVar[str] = "REDIS_"

    url: Annotated[
        str | None, doc("Redis URL; required for more than one backend process. Unset: in-memory")
    ] = None
    key_prefix: Annotated[
        str,
        doc("Prefix of every key Surge keeps in Redis, so that several deployments can share one Redis"),
    ] = "surge"


class AuthSettings(SettingsGroup, kw_only=True, frozen=True):
    jwt_secret: Annotated[
        str, doc("Secret that signs access tokens (at least 32 characters in production)")
    ] = INSECURE_JWT_SECRET
    access_token_ttl_s: Annotated[int, doc("Lifetime of an access token, seconds")] = 15 * 60
    refresh_token_ttl_s: Annotated[int, doc("Lifetime of a refresh token, seconds")] = 30 * 24 * 3600
    argon2_time_cost: Annotated[int, doc("argon2id iterations for password hashes")] = 3
    argon2_memory_kib: Annotated[int, doc("argon2id memory per hash, KiB")] = 65_536
    password_min_chars: Annotated[int, doc("Shortest password accepted at sign-up")] = 8
    signup_per_ip_per_hour: Annotated[int, doc("Sign-ups allowed per client IP per hour")] = 30
    login_per_ip_per_10min: Annotated[int, doc("Login attempts allowed per client IP per 10 minutes")] = 60
    login_per_email_ip_per_10min: Annotated[
        int, doc("Login attempts allowed per email from one client IP per 10 minutes")
    ] = 10
    login_per_email_per_10min: Annotated[
        int,
        doc(
            "Login attempts allowed per email from all IPs together per 10 minutes (looser: one attacker's"
            " IP cannot lock the owner out)"
        ),
    ] = 100
    refresh_per_family_per_10min: Annotated[
        int, doc("Refreshes allowed per login (token family) per 10 min")
    ] = 60
    trusted_proxies: Annotated[
        str, doc("Comma-separated proxy IPs whose X-Forwarded-For is believed for the client IP")
    ] = ""


Thinking = Literal["always", "optional", "never"]


class ModelSpec(msgspec.Struct, kw_only=True, frozen=True):
    """One model users can pick, and the SGLang workers that serve it."""

    id: str
    display_name: str
    # The name SGLang serves it under (``--served-model-name``); defaults to ``id``.
    upstream_model: str = ""
    # SGLang servers, each reached directly; or a single sglang-router URL.
    workers: list[str] = msgspec.field(default_factory=list)
    thinking: Thinking = "optional"
    # The chat_template_kwargs key that switches reasoning on (DeepSeek V3.1: "thinking"; Qwen3:
    # "enable_thinking"); unused when thinking is "always" or "never".
    thinking_switch: str | None = "thinking"
    context_tokens: int = 131_072
    max_output_tokens: int = 32_768
    # Turns the model's upstream runs at once, for admission. 0: the sum of each healthy worker's
    # max_running_requests from /server_info. Set it when ``workers`` is one router in front of several
    # servers: the router's /server_info describes only one of them.
    max_running: int = 0
    # The workers run with ``--enable-priority-scheduling`` (higher values first): each turn is sent
    # with its tier's priority, so inside a worker a paying turn goes before free ones, preempts one
    # when every running slot is taken, and never waits in Surge's queue for a slot.
    priority_scheduling: bool = False

    @property
    def served_name(self) -> str:
        return self.upstream_model or self.id

    def thinking_for(self, requested: bool | None) -> bool:
        """Whether an answer reasons: as the model must, else as the client asked (off by default)."""
        if self.thinking == "always":
            return True
        if self.thinking == "never":
            return False
        return bool(requested)


# What `make run` starts: two simulated SGLang workers serving a DeepSeek-V3.1-style model.
DEFAULT_MODELS: list[ModelSpec] = [
    ModelSpec(
        id="deepseek-v3.1",
        display_name="DeepSeek V3.1 (simulated)",
        workers=["http://127.0.0.1:30001", "http://127.0.0.1:30002"],
        thinking="optional",
        thinking_switch="thinking",
    )
]


class InferenceSettings(SettingsGroup, kw_only=True, frozen=True):
    models: Annotated[
        list[ModelSpec],
        doc(
            "JSON list of models: id, display_name, upstream_model, workers, thinking, thinking_switch, "
            "context_tokens, max_output_tokens, max_running, priority_scheduling"
        ),
    ] = msgspec.field(default_factory=lambda: list(DEFAULT_MODELS))
    default_model: Annotated[
        str, doc("Model of new conversations when the client names none (first model if unset)")
    ] = ""
    models_file: Annotated[
        str,
        doc(
            "A file holding SURGE_MODELS' JSON instead; re-read when it changes, so workers join and leave "
            "without a restart"
        ),
    ] = ""
    routing_policy: Annotated[
        Literal["ttft", "cache_aware", "least_load", "round_robin"],
        doc(
            "How a turn's worker is chosen: ttft (predicted time to first token), cache_aware (as "
            "sglang-router), least_load, round_robin"
        ),
    ] = "ttft"
    prefill_tokens_per_s: Annotated[
        float, doc("Uncached prompt tokens a worker prefills per second (the ttft policy's estimate)")
    ] = 20_000.0
    health_interval_s: Annotated[
        float, doc("How often each worker's /health, /get_load and /metrics are read")
    ] = 2.0
    health_timeout_s: Annotated[float, doc("A health probe slower than this has failed")] = 2.0
    health_failure_threshold: Annotated[int, doc("Failed probes in a row that mark a worker unhealthy")] = 3
    health_success_threshold: Annotated[int, doc("Good probes in a row that mark it healthy again")] = 2
    breaker_failures: Annotated[int, doc("Failed requests in a row that open a worker's circuit breaker")] = 5
    breaker_cooldown_s: Annotated[
        float, doc("How long an open breaker waits before letting one request test")
    ] = 10.0

    def model(self, model_id: str) -> ModelSpec | None:
        return next((spec for spec in self.models if spec.id == model_id), None)

    @property
    def default(self) -> ModelSpec:
        return self.model(self.default_model) or self.models[0]


DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer in the language of the user's last message. Be accurate and "
    "direct; say so when you are unsure. Use Markdown for structure when it helps, and keep answers as "
    "short as the question allows."
)


class ChatSettings(SettingsGroup, kw_only=True, frozen=True):
    content_max_chars: Annotated[int, doc("Longest user message accepted, characters")] = 32_000
    system_prompt: Annotated[
        str, doc("System prompt of every turn; identical for all users so that it is always a cache hit")
    ] = DEFAULT_SYSTEM_PROMPT
    event_log_ttl_s: Annotated[
        int,
        doc(
            "How long Redis keeps a finished turn's event log, seconds (readers replay finished turns from "
            "the database, exactly; the copy serves readers still following when the turn ends)"
        ),
    ] = 3600
    checkpoint_interval_s: Annotated[
        float,
        doc(
            "How often streaming turns' rows are updated: marked streaming once, and their new text appended "
            "while the event log cannot hold it (embedded, or Redis unreachable)"
        ),
    ] = 1.0
    stream_coalesce_ms: Annotated[
        float,
        doc(
            "Deltas arriving within this many ms go out as one event (SGLang sends one chunk per token): "
            "the most a delta is held back, traded against CPU per token"
        ),
    ] = 25.0
    lease_ttl_s: Annotated[
        float, doc("A replica silent this long (no heartbeat) loses its turns to the others")
    ] = 20.0
    sweep_interval_s: Annotated[
        float, doc("How often each replica heartbeats and sweeps the turns of silent replicas")
    ] = 5.0
    upstream_attempts: Annotated[int, doc("Workers tried for a turn that fails before its first token")] = 3
    first_token_timeout_s: Annotated[
        float, doc("A worker silent this long before the first token is retried")
    ] = 120.0
    token_gap_timeout_s: Annotated[float, doc("A stream silent this long between tokens has failed")] = 60.0
    context_drop_block_turns: Annotated[
        int, doc("Old turns dropped at a time when a conversation outgrows the context")
    ] = 4
    auto_titles: Annotated[bool, doc("Name untitled conversations after their first answer")] = True


Tier = Literal["free", "plus", "admin"]
TIERS: tuple[Tier, ...] = ("free", "plus", "admin")


class TierSettings(SettingsGroup, kw_only=True, frozen=True):
    """What each tier may use. Quotas count over a rolling window; 0 means unlimited."""

    env_prefix: ClassVar[str] = "TIER_"

    window_s: Annotated[int, doc("Length of the rolling window quotas are counted over, seconds")] = 3 * 3600
    free_messages: Annotated[int, doc("Turns (sends and regenerations) a free user may start per window")] = (
        50
    )
    free_tokens: Annotated[
        int, doc("Output tokens (reasoning included) a free user may receive per window")
    ] = 200_000
    free_concurrent_turns: Annotated[int, doc("Turns a free user may have generating at once (else 429)")] = 2
    free_priority: Annotated[int, doc("Queue priority of free users' turns (lower is served first)")] = 2
    plus_messages: Annotated[int, doc("Turns a plus user may start per window")] = 500
    plus_tokens: Annotated[int, doc("Output tokens a plus user may receive per window")] = 4_000_000
    plus_concurrent_turns: Annotated[int, doc("Turns a plus user may have generating at once")] = 4
    plus_priority: Annotated[int, doc("Queue priority of plus users' turns")] = 1
    admin_messages: Annotated[int, doc("Turns an admin may start per window")] = 0
    admin_tokens: Annotated[int, doc("Output tokens an admin may receive per window")] = 0
    admin_concurrent_turns: Annotated[int, doc("Turns an admin may have generating at once")] = 8
    admin_priority: Annotated[int, doc("Queue priority of admins' turns")] = 0


class AdmissionSettings(SettingsGroup, kw_only=True, frozen=True):
    """The fair queue in front of the fleet and the overload policy's degrade ladder."""

    env_prefix: ClassVar[str] = "ADMISSION_"

    max_queue_wait_s: Annotated[
        float, doc("A turn waiting longer than this for capacity fails with `overloaded` + Retry-After")
    ] = 60.0
    paid_reserved_share: Annotated[
        float,
        doc(
            "Share of each model's slots kept for paying tiers while overloaded (level 1+): free turns queue "
            "rather than take them, so a paying user's turn finds a slot at once"
        ),
    ] = 0.25
    messages_per_user_per_min: Annotated[int, doc("Turns one user may start per minute (else 429)")] = 20
    messages_per_ip_per_min: Annotated[
        int, doc("Turns one client IP may start per minute (generous: carriers put many phones on one IP)")
    ] = 600
    conversations_per_user_per_min: Annotated[
        int, doc("Conversations one user may create per minute (else 429)")
    ] = 30
    devices_per_user_per_min: Annotated[
        int, doc("Device registrations one user may make per minute (else 429)")
    ] = 10
    streams_per_user: Annotated[
        int, doc("Event streams (SSE) one user may have open at once, per backend process (else 429)")
    ] = 16
    sockets_per_user: Annotated[
        int, doc("WebSockets one user may have open at once, per backend process (else closed, 1013)")
    ] = 8
    ladder_thresholds: Annotated[
        str,
        doc(
            "Queue length, as a multiple of the fleet's capacity, at which degrade levels 1, 2, 3 and 4 "
            "begin (comma-separated)"
        ),
    ] = "0.25,0.5,1,2"
    raise_after_s: Annotated[
        float, doc("Pressure must call for a higher level this long before it rises")
    ] = 2.0
    lower_after_s: Annotated[
        float, doc("Pressure must stay below the current level this long before it falls one step")
    ] = 20.0
    overloaded_signups_per_min: Annotated[
        int,
        doc(
            "New accounts let in per minute across the fleet while overloaded but not paused (levels 1-2): "
            "sign-ups reopen gradually rather than let the whole waiting crowd in at once "
            "(`503 signups_paused` beyond it)"
        ),
    ] = 120
    degraded_max_tokens: Annotated[
        int, doc("Answer budget (max_tokens) of degraded turns: free from level 1, plus from level 4")
    ] = 2048
    shed_retry_after_s: Annotated[
        float,
        doc("Retry-After given to turns and sign-ups refused while overloaded, seconds (give or take 20%)"),
    ] = 30.0
    interval_s: Annotated[float, doc("How often queue pressure is measured and the degrade level set")] = 1.0

    def thresholds(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.ladder_thresholds.split(",") if part.strip())


class FirebaseSettings(SettingsGroup, kw_only=True, frozen=True):
    env_prefix: ClassVar[str] = "FIREBASE_"

    project_id: Annotated[
        str,
        doc(
            "Firebase project id: turns on `POST /v1/auth/firebase` and addresses FCM "
            "(default: the FCM credentials file's project)"
        ),
    ] = ""
    clock_skew_s: Annotated[
        int, doc("Seconds of clock difference tolerated when checking a Firebase ID token (0-60)")
    ] = 5
    signin_per_ip_per_10min: Annotated[int, doc("Firebase sign-ins allowed per client IP per 10 minutes")] = (
        60
    )


class FcmSettings(SettingsGroup, kw_only=True, frozen=True):
    env_prefix: ClassVar[str] = "FCM_"

    credentials_file: Annotated[
        str, doc("Service-account JSON file FCM pushes are sent with. Unset: pushes are logged, not sent")
    ] = ""
    timeout_s: Annotated[int, doc("Timeout of one request to FCM, seconds")] = 10
    send_url: Annotated[
        str,
        doc(
            "FCM's send endpoint (`https://.../v1/projects/{project}/messages:send`) for a stand-in of FCM "
            "in staging or load tests (`make chaos`); unset: Google's"
        ),
    ] = ""


class PushSettings(SettingsGroup, kw_only=True, frozen=True):
    env_prefix: ClassVar[str] = "PUSH_"

    dispatcher_enabled: Annotated[
        bool, doc("Run the push outbox dispatcher in this process (every replica runs one)")
    ] = True
    poll_interval_s: Annotated[
        float,
        doc(
            "How often the dispatcher looks for pushes that are due, seconds (a push enqueued by this "
            "process wakes it at once)"
        ),
    ] = 5.0
    batch_size: Annotated[int, doc("Pushes sent per FCM batch (1-500)")] = 100
    claim_ttl_s: Annotated[
        int, doc("Seconds a dispatcher's claim on a push holds; after that another replica may send it")
    ] = 60
    max_attempts: Annotated[int, doc("Sends tried per push and device before giving up")] = 8
    retry_base_s: Annotated[
        float, doc("First retry delay after a transient FCM error; doubles each time")
    ] = 5.0
    retry_max_s: Annotated[float, doc("Longest retry delay, seconds (a longer Retry-After is honoured)")] = (
        600.0
    )
    ttl_s: Annotated[
        int,
        doc("Lifetime of an 'answer ready' push, seconds: FCM/APNs expiry, and the outbox drops it after"),
    ] = 3600
    per_device_per_10min: Annotated[
        int, doc("Pushes sent to one device per 10 minutes; more wait for the window")
    ] = 10
    include_text: Annotated[
        bool, doc("Put the start of the answer in the notification body (off: the title and ids only)")
    ] = False


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Everything Surge can be configured with; build it with :func:`load_settings`."""

    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    chat: ChatSettings = msgspec.field(default_factory=ChatSettings)
    tiers: TierSettings = msgspec.field(default_factory=TierSettings)
    admission: AdmissionSettings = msgspec.field(default_factory=AdmissionSettings)
    inference: InferenceSettings = msgspec.field(default_factory=InferenceSettings)
    firebase: FirebaseSettings = msgspec.field(default_factory=FirebaseSettings)
    fcm: FcmSettings = msgspec.field(default_factory=FcmSettings)
    push: PushSettings = msgspec.field(default_factory=PushSettings)

    @property
    def database_url(self) -> str:
        """The configured database URL, or the embedded SQLite file under ``data_dir``."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{Path(self.server.data_dir) / 'surge.sqlite3'}"

    @property
    def public_base_url(self) -> str:
        """Where clients reach this service, without a trailing slash: ``SURGE_PUBLIC_URL``, else (only
        outside production) the address ``surge serve`` listens on. Never the request's Host header: a
        client could make Surge hand out links to a site of its choosing."""
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        host = "127.0.0.1" if self.server.host in ("0.0.0.0", "::", "") else self.server.host  # noqa: S104
        return f"http://{host}:{self.server.port}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def production_problems(self) -> list[str]:
        """Why this configuration must not serve real users; empty when it may."""
        problems: list[str] = []
        if self.server.env != "production":
            return problems
        if (secret_problem := jwt_secret_problem(self.auth.jwt_secret)) is not None:
            problems.append(secret_problem)
        # Share links are built from it: never from the request's Host header, which the client writes.
        if not self.server.public_url.startswith(("https://", "http://")):
            problems.append("SURGE_PUBLIC_URL must be the http(s) URL clients reach this service at")
        if self.is_sqlite:
            problems.append(
                "SURGE_DATABASE_URL must point at PostgreSQL (SQLite is the embedded default only)"
            )
        if self.server.workers > 1 and not self.redis.url:
            problems.append("SURGE_REDIS_URL is required to run more than one backend process")
        # firebase-admin reads this from the process environment and then accepts unsigned ID tokens.
        if os.environ.get(FIREBASE_AUTH_EMULATOR_HOST):
            problems.append(
                f"{FIREBASE_AUTH_EMULATOR_HOST} is set: firebase-admin would accept unsigned ID tokens"
            )
        return problems

    def configuration_problems(self) -> list[str]:
        """Settings that cannot work in any mode."""
        problems: list[str] = []
        if not self.inference.models:
            problems.append("SURGE_MODELS must list at least one model")
        ids = [spec.id for spec in self.inference.models]
        if len(set(ids)) != len(ids):
            problems.append("SURGE_MODELS has two models with the same id")
        if self.inference.default_model and self.inference.model(self.inference.default_model) is None:
            problems.append(f"SURGE_DEFAULT_MODEL {self.inference.default_model!r} is not in SURGE_MODELS")
        if self.fcm.credentials_file and not Path(self.fcm.credentials_file).is_file():
            problems.append(
                f"SURGE_FCM_CREDENTIALS_FILE {self.fcm.credentials_file!r} is not a readable file"
            )
        if not 1 <= self.push.batch_size <= 500:
            problems.append("SURGE_PUSH_BATCH_SIZE must be between 1 and 500 (FCM's batch limit)")
        try:
            thresholds = self.admission.thresholds()
        except ValueError:
            thresholds = ()
        if len(thresholds) != 4 or list(thresholds) != sorted(thresholds) or thresholds[0] <= 0:
            problems.append("SURGE_ADMISSION_LADDER_THRESHOLDS must be four increasing positive numbers")
        if not 0 <= self.firebase.clock_skew_s <= 60:
            problems.append("SURGE_FIREBASE_CLOCK_SKEW_S must be between 0 and 60")
        # A claim must outlive a send (firebase-admin may try a 401 three times): else a second
        # dispatcher could take over a push that is still on its way and send it again.
        if self.push.claim_ttl_s < 4 * self.fcm.timeout_s:
            problems.append("SURGE_PUSH_CLAIM_TTL_S must be at least 4 x SURGE_FCM_TIMEOUT_S")
        return problems


GROUPS: Mapping[str, type[SettingsGroup]] = {
    "server": ServerSettings,
    "database": DatabaseSettings,
    "redis": RedisSettings,
    "auth": AuthSettings,
    "chat": ChatSettings,
    "tiers": TierSettings,
    "admission": AdmissionSettings,
    "inference": InferenceSettings,
    "firebase": FirebaseSettings,
    "fcm": FcmSettings,
    "push": PushSettings,
}

G = TypeVar("G", bound=SettingsGroup)


class SettingsError(ValueError):
    """A ``SURGE_*`` variable that cannot be parsed into its setting."""


def env_name(group: type[SettingsGroup], field: str) -> str:
    return f"SURGE_{group.env_prefix}{field}".upper()


def _load_group(group: type[G], environ: Mapping[str, str]) -> G:
    raw: dict[str, Any] = {}
    for field in msgspec.structs.fields(group):
        name = env_name(group, field.name)
        if name in environ:
            value: Any = environ[name]
            if value == "" and field.default is None:
                value = None
            if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
                # Structured settings (the model list) arrive as JSON.
                try:
                    value = msgspec.json.decode(value)
                except msgspec.DecodeError as exc:
                    raise SettingsError(f"{name} is not valid JSON: {exc}") from exc
            raw[field.name] = value
    try:
        # strict=False lets msgspec turn "8000" into 8000 and "true" into True.
        return msgspec.convert(raw, group, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid {group.__name__} from environment: {exc}") from exc


def read_models_file(path: str) -> list[ModelSpec]:
    """``SURGE_MODELS_FILE``: the model list as JSON (read at start-up, and again whenever it changes)."""
    try:
        return msgspec.json.decode(Path(path).read_bytes(), type=list[ModelSpec])
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SettingsError(f"SURGE_MODELS_FILE {path}: {exc}") from exc


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every setting from the environment (``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    inference = _load_group(InferenceSettings, env)
    if inference.models_file:
        inference = msgspec.structs.replace(inference, models=read_models_file(inference.models_file))
    return Settings(
        server=_load_group(ServerSettings, env),
        database=_load_group(DatabaseSettings, env),
        redis=_load_group(RedisSettings, env),
        auth=_load_group(AuthSettings, env),
        chat=_load_group(ChatSettings, env),
        tiers=_load_group(TierSettings, env),
        admission=_load_group(AdmissionSettings, env),
        inference=inference,
        firebase=_load_group(FirebaseSettings, env),
        fcm=_load_group(FcmSettings, env),
        push=_load_group(PushSettings, env),
    )


def settings_table() -> str:
    """The README's configuration table, generated so that it cannot drift from the code."""
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for group in GROUPS.values():
        for field in msgspec.structs.fields(group):
            description = ""
            for meta in getattr(field.type, "__metadata__", ()):
                if isinstance(meta, msgspec.Meta) and meta.description:
                    description = meta.description
            default = field.default
            if default is msgspec.NODEFAULT and field.default_factory is not msgspec.NODEFAULT:
                default = field.default_factory()
            shown = _shown(default)
            rows.append(f"| `{env_name(group, field.name)}` | `{shown}` | {description} |")
    return "\n".join(rows)


def _shown(default: object) -> str:
    if default is None or default == "":
        return ""
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, list):
        return "(two simulated workers, see below)" if default else "[]"
    return str(default)
