"""What the notifier writes, derived deterministically from its causes (pure).

A notification is created once per (subscription, entity, kind, cause): its id and dedup
key are hashes of them, so a replay after a crash or a rebalance makes the same id again
and the database keeps the first. The cause is the signal's own event (a reported finding's)
and the delta's cause event and version; a user's two subscriptions that both cover an
entity (the NFT, and the wallet holding it) each notify on their own channels.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from trustscore_stream.notifications.pacing import Pacing
from trustscore_stream.notifications.significance import Finding, WatchState

CHANNELS = ("in_app", "webhook", "email", "push", "sms")


class SubscriptionRecord(msgspec.Struct, frozen=True):
    """A subscription as the stream side keeps it (no secrets: delivery reads those from
    the database)."""

    id: str
    user_id: str
    entity: str
    channels: tuple[str, ...]
    min_score: float | None = None
    change_pct: float | None = None
    locale: str | None = None
    webhook_url: str | None = None
    email: str | None = None


class SubscriptionChange(msgspec.Struct, frozen=True):
    """A record of `trustscore-subscriptions` (key: the entity id)."""

    op: str  # "put" | "delete"
    subscription: SubscriptionRecord


class Watching(msgspec.Struct, frozen=True):
    """Per (subscription, entity): significance state and frequency state."""

    significance: WatchState = msgspec.field(default_factory=WatchState)
    pacing: Pacing = msgspec.field(default_factory=Pacing)
    last_level: str | None = None  # deltas carry the previous score, not the previous level
    seen: tuple[str, ...] = ()  # alert evidence lines already reported (the newest)
    # The newest delta version observed: a replay after the state was written (a crash or
    # rebalance before the commit) skips what this watch has counted already.
    last_version: int = 0


def dedup_key(subscription_id: str, entity: str, kind: str, cause: str) -> str:
    digest = hashlib.sha256(f"{subscription_id}\x1f{entity}\x1f{kind}\x1f{cause}".encode())
    return digest.hexdigest()


def notification_id(key: str) -> str:
    return key[:32]


def targets(sub: SubscriptionRecord) -> list[tuple[str, str | None]]:
    """(channel, target) of the deliveries a notification of `sub` needs besides in-app."""
    out: list[tuple[str, str | None]] = []
    for channel in sub.channels:
        if channel == "webhook":
            out.append((channel, sub.webhook_url))
        elif channel == "email":
            out.append((channel, sub.email))
        elif channel in ("push", "sms"):
            out.append((channel, sub.user_id))
    return out


def data_of(
    facts: dict[str, Any],
    cause_event_id: str | None,
    version: int | None,
    cause_event_ids: Sequence[str] = (),
) -> dict[str, Any]:
    """The notification's `data`; `cause_event_ids` (the events a conflated delta carried,
    the last being the cause) only when there were several."""
    data = {**facts, "cause_event_id": cause_event_id, "version": version}
    if len(cause_event_ids) > 1:
        data["cause_event_ids"] = list(cause_event_ids)
    return data


# The scoring model's fraud_risk evidence line for a finding (scoring/fraud.py `describe`;
# tests/unit/test_pacing.py checks that the two agree).
_FINDING = re.compile(
    r"(?P<finding>[a-z_]+) \((?P<severity>low|medium|high|critical), "
    r"confidence (?P<confidence>[0-9.]+)\) on .+ \(event (?P<event>.*)\)"
)
# Evidence of the other alert factors that is news in itself.
# (A share of suspicious sales is not news by itself: the score says how much it weighs.)
SEVERE_MARKERS = ("circular trade", "round trip", "self-trade", "flagged wallet")
MAX_SEEN = 32


def alerts(
    evidence: dict[str, list[str]], seen: tuple[str, ...]
) -> tuple[tuple[Finding, ...], tuple[str, ...], tuple[str, ...]]:
    """(new findings, new severe evidence lines, seen') from a delta's `evidence`."""
    findings: list[Finding] = []
    severe: list[str] = []
    known = set(seen)
    fresh: list[str] = []
    for factor, lines in evidence.items():
        for line in lines:
            if line in known:
                continue
            known.add(line)
            if factor == "fraud_risk":
                match = _FINDING.fullmatch(line)
                try:
                    confidence = float(match["confidence"]) if match else -1.0
                except ValueError:
                    confidence = -1.0
                if match is None or not 0.0 <= confidence <= 1.0:
                    continue
                fresh.append(line)
                findings.append(
                    Finding(
                        finding=match["finding"],
                        severity=match["severity"],
                        confidence=confidence,
                        event_id=match["event"] or None,
                    )
                )
            elif any(marker in line for marker in SEVERE_MARKERS):
                fresh.append(line)
                severe.append(line)
    return tuple(findings), tuple(severe), (*seen, *fresh)[-MAX_SEEN:]
