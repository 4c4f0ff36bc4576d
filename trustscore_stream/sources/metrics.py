"""Prometheus metrics of a source process (served by `--metrics-port`). Labels are bounded:
provider host:port, source name, event type, reason, outcome."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class SourceMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.provider_up = Gauge(
            "trustscore_source_provider_up",
            "1 when the RPC provider answered its last head request",
            ["provider"],
            registry=r,
        )
        self.provider_head = Gauge(
            "trustscore_source_provider_head_block",
            "Head block number the provider last reported",
            ["provider"],
            registry=r,
        )
        self.provider_lag = Gauge(
            "trustscore_source_provider_lag_blocks",
            "Blocks the provider's head is behind the best head of all providers",
            ["provider"],
            registry=r,
        )
        self.provider_active = Gauge(
            "trustscore_source_provider_active",
            "1 for the provider the chain source reads from",
            ["provider"],
            registry=r,
        )
        self.provider_errors = Counter(
            "trustscore_source_provider_errors_total",
            "Provider failures by kind (error, timeout, lag)",
            ["provider", "kind"],
            registry=r,
        )
        self.provider_switches = Counter(
            "trustscore_source_provider_switches_total",
            "Times the chain source switched to another provider",
            registry=r,
        )
        self.checkpoint_block = Gauge(
            "trustscore_source_checkpoint_block",
            "Last fully processed block",
            ["source"],
            registry=r,
        )
        self.reorgs = Counter(
            "trustscore_source_reorgs_total",
            "Reorgs seen: depth=unconfirmed (nothing emitted) or confirmed (rewound)",
            ["source", "depth"],
            registry=r,
        )
        self.range_splits = Counter(
            "trustscore_source_range_splits_total",
            "eth_getLogs ranges split because a provider refused them as too large",
            ["source"],
            registry=r,
        )
        self.events = Counter(
            "trustscore_source_events_total",
            "Envelopes published",
            ["source", "type"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "trustscore_source_dead_lettered_total",
            "Items dead-lettered by a source",
            ["source", "reason"],
            registry=r,
        )
        self.polls = Counter(
            "trustscore_source_polls_total",
            "HTTP polls by outcome (ok, not_modified, http_error, timeout, error, garbage)",
            ["source", "outcome"],
            registry=r,
        )
