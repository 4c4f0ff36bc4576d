"""All configuration, typed, read from the environment once (CONTRACT §7).

`load_settings()` is called by the composition root (app.py / cli.py); nothing else reads
`os.environ`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trustscore_stream.logs.components import COMPONENTS

DEFAULT_WEB_PORT = 6066


class SettingsError(ValueError):
    """A configuration value that cannot be used."""


@dataclass(frozen=True, slots=True)
class Settings:
    # Where the stream lives. None means "start the embedded broker" (CLI only).
    broker: str | None = None
    # True when the broker is the embedded Tansu: enables its one-record-per-batch workaround.
    embedded_broker: bool = False
    database_url: str | None = None
    data_dir: Path = Path("var")
    web_port: int = DEFAULT_WEB_PORT
    web_bind: str = "127.0.0.1"
    web_host: str = "127.0.0.1"  # how other workers reach this one (table routing)
    jwt_secret: str | None = None
    app_id: str = "trustscore"
    topic_prefix: str = ""  # namespaces every topic: several deployments on one cluster
    partitions: int = 8
    replication: int = 1
    # Group membership: short sessions get a worker to its first record in ~4 s and fail
    # over in seconds (docs/operations.md has the measurements).
    session_timeout_s: float = 4.0
    heartbeat_interval_s: float = 1.0
    rebalance_timeout_s: float = 20.0
    # Batching of the ingest stages: at most this many records per take, or this long.
    take_max: int = 1000
    take_within_s: float = 0.05
    # Dedup memory: ids are remembered this long after first seen, at most this many per
    # partition (the oldest hour buckets go first).
    dedup_retention_s: float = 7 * 86400.0
    dedup_max_ids_per_partition: int = 2_000_000
    # Retry of transient failures through the retry topic.
    retry_max_attempts: int = 5
    retry_base_delay_s: float = 0.5
    retry_max_delay_s: float = 60.0
    # Lanes: bulk waits at most this long behind critical/normal work (no starvation).
    lane_max_wait_s: float = 2.0
    # A score change smaller than this (points) is not published.
    significance: float = 0.5
    # Scoring state is checkpointed (written, then its input acknowledged) this often, or
    # after this many events, whichever comes first; changed entities are scored and their
    # deltas published once per conflation window (a burst becomes one delta). While input
    # is already waiting on the lane topics (a backlog), the window stretches up to
    # `conflation_max_s`: the engine catches up instead of scoring every 250 ms.
    checkpoint_interval_s: float = 5.0
    checkpoint_max_events: int = 50_000
    conflation_window_s: float = 0.25
    conflation_max_s: float = 5.0
    # Entity-state table records per partition (tables/state_buckets.py): more buckets mean
    # smaller records and more of them per checkpoint. Fixed for the life of the state.
    state_buckets: int = 32
    # Decoded clean entities kept per partition between checkpoints; beyond it they are
    # dropped (they stay encoded in their bucket and are decoded again when next needed).
    state_cache_entities: int = 50_000
    ingest_keys: Mapping[str, str] = field(default_factory=dict)
    ingest_rate: float = 1000.0
    # Refuse HMAC-signed requests without a fresh signed X-TrustScore-Timestamp (replays).
    ingest_require_timestamp: bool = False
    # Logging (docs/operations.md "Logging"): the default level, levels per component,
    # json or text (None: the process's own default), and the id every line carries.
    log_level: str = "INFO"
    log_levels: Mapping[str, str] = field(default_factory=dict)
    log_format: str | None = None
    worker_id: str = ""
    # Which stages this worker runs; all by default. Splitting them lets ingest and scoring
    # scale as separate worker pools (and the ingest benchmark measure ingest alone).
    stages: frozenset[str] = frozenset({"ingest", "route", "lanes", "notify"})
    # Longest wait of an empty fetch (trustscore_stream/fetch_wait.py). None: 50 ms on the
    # embedded broker (it answers a waiting fetch late), 1,500 ms (Faust's) on Kafka.
    fetch_wait: int | None = None
    # Live stream (CONTRACT §4, docs/architecture.md "Live stream").
    sse_ping_s: float = 15.0  # a `: ping` comment at least this often (also reaps dead peers)
    sse_retry_ms: int = 3000  # the `retry:` sent once: how soon a browser reconnects
    sse_queue_frames: int = 4096  # a client this many frames behind is disconnected
    sse_streams_per_user: int = 3
    sse_streams_total: int = 20_000  # per worker
    sse_replay_s: float = 300.0  # a reconnect within this long resumes without loss
    sse_replay_entries: int = 300_000  # memory bound of the replay buffer (all channels)
    # Kernel send buffer per stream in bytes (0: the OS autotunes it, up to megabytes): how
    # much a stalled client can hold before its queue fills and it is cut off.
    sse_send_buffer: int = 0
    # Notifications (docs/notifications.md): frequency management per subscription and entity.
    notify_cooldown_s: float = 600.0
    notify_cap_per_hour: int = 20  # per subscription and entity
    notify_user_cap_per_hour: int = 50  # per user, all subscriptions together
    notify_digest_interval_s: float = 900.0
    # Delivery: attempts (first included), backoff with jitter, per-attempt timeout.
    delivery_max_attempts: int = 6
    delivery_base_delay_s: float = 2.0
    delivery_max_delay_s: float = 900.0
    delivery_timeout_s: float = 10.0
    delivery_poll_s: float = 1.0
    escalate_after_s: float = 900.0  # a critical in-app notification unread this long
    webhook_allow_private: bool = False  # let webhooks call private/loopback addresses
    push_url: str | None = None  # provider endpoint for `push` (POST JSON)
    sms_url: str | None = None  # provider endpoint for `sms` (POST JSON)
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    smtp_from: str = "TrustScore Stream <alerts@localhost>"
    # Bearer token of the operations endpoints (/ops/v1/..., web/ops.py); None: they answer
    # only loopback clients, and only while the web server binds a loopback address.
    ops_token: str | None = None

    @property
    def fetch_wait_ms(self) -> int:
        if self.fetch_wait is not None:
            return self.fetch_wait
        return 50 if self.embedded_broker else 1500

    @property
    def broker_url(self) -> str:
        if self.broker is None:
            raise SettingsError("TRUSTSCORE_BROKER is not set (the CLI starts an embedded one)")
        return self.broker

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'trustscore.sqlite').resolve()}"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum:g}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def parse_ingest_keys(raw: str) -> dict[str, str]:
    """`key_id:secret,key_id:secret` (CONTRACT §8)."""
    keys: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        key_id, sep, secret = part.partition(":")
        if not sep or not key_id or not secret:
            raise SettingsError("TRUSTSCORE_INGEST_KEYS must be comma-separated key_id:secret")
        keys[key_id] = secret
    return keys


def _broker(raw: str | None) -> str | None:
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip()
    if not value.startswith("kafka://"):
        raise SettingsError(f"TRUSTSCORE_BROKER must look like kafka://host:port, got {raw!r}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read every setting from the environment (os.environ by default)."""
    env = os.environ if env is None else env
    return Settings(
        broker=_broker(env.get("TRUSTSCORE_BROKER")),
        embedded_broker=_bool(env, "TRUSTSCORE_EMBEDDED_BROKER", False),
        database_url=env.get("TRUSTSCORE_DATABASE_URL") or None,
        data_dir=Path(env.get("TRUSTSCORE_DATA_DIR") or "var"),
        web_port=_int(env, "TRUSTSCORE_WEB_PORT", DEFAULT_WEB_PORT, 1),
        web_bind=env.get("TRUSTSCORE_WEB_BIND") or "127.0.0.1",
        web_host=env.get("TRUSTSCORE_WEB_HOST") or "127.0.0.1",
        jwt_secret=env.get("TRUSTSCORE_JWT_SECRET") or None,
        app_id=env.get("TRUSTSCORE_APP_ID") or "trustscore",
        topic_prefix=env.get("TRUSTSCORE_TOPIC_PREFIX") or "",
        partitions=_int(env, "TRUSTSCORE_PARTITIONS", 8, 1),
        replication=_int(env, "TRUSTSCORE_REPLICATION", 1, 1),
        session_timeout_s=env_float(env, "TRUSTSCORE_SESSION_TIMEOUT", 4.0),
        heartbeat_interval_s=env_float(env, "TRUSTSCORE_HEARTBEAT_INTERVAL", 1.0),
        rebalance_timeout_s=env_float(env, "TRUSTSCORE_REBALANCE_TIMEOUT", 20.0),
        take_max=_int(env, "TRUSTSCORE_TAKE_MAX", 1000, 1),
        take_within_s=env_float(env, "TRUSTSCORE_TAKE_WITHIN", 0.05),
        dedup_retention_s=env_float(env, "TRUSTSCORE_DEDUP_RETENTION", 7 * 86400.0),
        dedup_max_ids_per_partition=_int(env, "TRUSTSCORE_DEDUP_MAX_IDS", 2_000_000, 1),
        retry_max_attempts=_int(env, "TRUSTSCORE_RETRY_MAX_ATTEMPTS", 5, 1),
        retry_base_delay_s=env_float(env, "TRUSTSCORE_RETRY_BASE_DELAY", 0.5),
        retry_max_delay_s=env_float(env, "TRUSTSCORE_RETRY_MAX_DELAY", 60.0),
        lane_max_wait_s=env_float(env, "TRUSTSCORE_LANE_MAX_WAIT", 2.0),
        significance=env_float(env, "TRUSTSCORE_SIGNIFICANCE", 0.5),
        checkpoint_interval_s=env_float(env, "TRUSTSCORE_CHECKPOINT_INTERVAL", 5.0),
        checkpoint_max_events=_int(env, "TRUSTSCORE_CHECKPOINT_MAX_EVENTS", 50_000, 1),
        conflation_window_s=env_float(env, "TRUSTSCORE_CONFLATION_WINDOW", 0.25),
        conflation_max_s=env_float(env, "TRUSTSCORE_CONFLATION_MAX", 5.0),
        state_buckets=_int(env, "TRUSTSCORE_STATE_BUCKETS", 32, 1),
        state_cache_entities=_int(env, "TRUSTSCORE_STATE_CACHE_ENTITIES", 50_000, 1),
        ingest_keys=parse_ingest_keys(env.get("TRUSTSCORE_INGEST_KEYS") or ""),
        ingest_rate=env_float(env, "TRUSTSCORE_INGEST_RATE", 1000.0),
        ingest_require_timestamp=_bool(env, "TRUSTSCORE_INGEST_REQUIRE_TIMESTAMP", False),
        log_level=log_level("TRUSTSCORE_LOG_LEVEL", env.get("TRUSTSCORE_LOG_LEVEL") or "INFO"),
        log_levels=parse_log_levels(env.get("TRUSTSCORE_LOG_LEVELS") or ""),
        log_format=_log_format(env.get("TRUSTSCORE_LOG_FORMAT")),
        worker_id=_worker_id(
            env.get("TRUSTSCORE_WORKER_ID"), _int(env, "TRUSTSCORE_WEB_PORT", DEFAULT_WEB_PORT, 1)
        ),
        stages=_stages(env.get("TRUSTSCORE_STAGES")),
        fetch_wait=_int(env, "TRUSTSCORE_FETCH_WAIT_MS", 0, 1) or None,
        sse_ping_s=_ping(env_float(env, "TRUSTSCORE_SSE_PING", 15.0, 0.01)),
        sse_retry_ms=_int(env, "TRUSTSCORE_SSE_RETRY_MS", 3000, 0),
        sse_queue_frames=_int(env, "TRUSTSCORE_SSE_QUEUE_FRAMES", 4096, 1),
        sse_streams_per_user=_int(env, "TRUSTSCORE_SSE_STREAMS_PER_USER", 3, 1),
        sse_streams_total=_int(env, "TRUSTSCORE_SSE_STREAMS_TOTAL", 20_000, 1),
        sse_replay_s=env_float(env, "TRUSTSCORE_SSE_REPLAY_SECONDS", 300.0),
        sse_replay_entries=_int(env, "TRUSTSCORE_SSE_REPLAY_ENTRIES", 300_000, 1),
        sse_send_buffer=_int(env, "TRUSTSCORE_SSE_SEND_BUFFER", 0, 0),
        notify_cooldown_s=env_float(env, "TRUSTSCORE_NOTIFY_COOLDOWN", 600.0),
        notify_cap_per_hour=_int(env, "TRUSTSCORE_NOTIFY_CAP_PER_HOUR", 20, 1),
        notify_user_cap_per_hour=_int(env, "TRUSTSCORE_NOTIFY_USER_CAP_PER_HOUR", 50, 1),
        notify_digest_interval_s=env_float(env, "TRUSTSCORE_NOTIFY_DIGEST_INTERVAL", 900.0, 0.1),
        delivery_max_attempts=_int(env, "TRUSTSCORE_DELIVERY_MAX_ATTEMPTS", 6, 1),
        delivery_base_delay_s=env_float(env, "TRUSTSCORE_DELIVERY_BASE_DELAY", 2.0),
        delivery_max_delay_s=env_float(env, "TRUSTSCORE_DELIVERY_MAX_DELAY", 900.0),
        delivery_timeout_s=env_float(env, "TRUSTSCORE_DELIVERY_TIMEOUT", 10.0, 0.1),
        delivery_poll_s=env_float(env, "TRUSTSCORE_DELIVERY_POLL", 1.0, 0.05),
        escalate_after_s=env_float(env, "TRUSTSCORE_ESCALATE_AFTER", 900.0),
        webhook_allow_private=_bool(env, "TRUSTSCORE_WEBHOOK_ALLOW_PRIVATE", False),
        push_url=env.get("TRUSTSCORE_PUSH_URL") or None,
        sms_url=env.get("TRUSTSCORE_SMS_URL") or None,
        smtp_host=env.get("TRUSTSCORE_SMTP_HOST") or None,
        smtp_port=_int(env, "TRUSTSCORE_SMTP_PORT", 587, 1),
        smtp_user=env.get("TRUSTSCORE_SMTP_USER") or None,
        smtp_password=env.get("TRUSTSCORE_SMTP_PASSWORD") or None,
        smtp_starttls=_bool(env, "TRUSTSCORE_SMTP_STARTTLS", True),
        smtp_from=env.get("TRUSTSCORE_SMTP_FROM") or "TrustScore Stream <alerts@localhost>",
        ops_token=env.get("TRUSTSCORE_OPS_TOKEN") or None,
    )


class _RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __getitem__(self, name: str) -> str:
        self.names.append(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def environment_variables() -> tuple[str, ...]:
    """Every environment variable `load_settings()` reads, in the order it reads them.

    Found by running `load_settings` on an empty environment that records each lookup, so
    the list follows the code; deployment files are checked against it (tests/deploy).
    """
    env = _RecordingEnv()
    load_settings(env)
    return tuple(dict.fromkeys(env.names))


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")


def log_level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    level = "WARNING" if level == "WARN" else level
    if level not in LOG_LEVELS:
        raise SettingsError(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


def parse_log_levels(raw: str) -> dict[str, str]:
    """`component=LEVEL,component=LEVEL` (components: logs/components.py)."""
    levels: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        component, sep, level = part.partition("=")
        component = component.strip().lower()
        if not sep or component not in COMPONENTS:
            raise SettingsError(
                "TRUSTSCORE_LOG_LEVELS must be comma-separated component=LEVEL with components "
                f"{', '.join(COMPONENTS)}; got {part!r}"
            )
        levels[component] = log_level(f"TRUSTSCORE_LOG_LEVELS ({component})", level)
    return levels


def _log_format(raw: str | None) -> str | None:
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value not in LOG_FORMATS:
        raise SettingsError(f"TRUSTSCORE_LOG_FORMAT must be json or text, got {raw!r}")
    return value


def _worker_id(raw: str | None, web_port: int) -> str:
    """TRUSTSCORE_WORKER_ID, else host:web port (unique per worker, as table routing needs)."""
    explicit = (raw or "").strip()
    return explicit or f"{socket.gethostname()}:{web_port}"


def _ping(seconds: float) -> float:
    if seconds > 15.0:
        raise SettingsError("TRUSTSCORE_SSE_PING is at most 15 (CONTRACT §4)")
    return seconds


STAGES = ("ingest", "route", "lanes", "notify")


def _stages(raw: str | None) -> frozenset[str]:
    if not raw:
        return frozenset(STAGES)
    chosen = frozenset(part.strip() for part in raw.split(",") if part.strip())
    unknown = chosen - set(STAGES)
    if unknown or not chosen:
        raise SettingsError(f"TRUSTSCORE_STAGES takes a comma list of {', '.join(STAGES)}")
    return chosen
