"""Frequency management per subscription and entity (pure): what is sent now, what waits
for a digest.

- critical items are never delayed or grouped;
- low-severity items always go to the digest;
- any other item is sent unless the same kind was sent for this entity within the cooldown,
  or the subscription already sent its hourly cap here; then it goes to the digest instead
  (grouped, not lost);
- the digest is due once `digest_interval_s` has passed since its first item; it holds the
  newest `digest_max` items and counts all it grouped.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from trustscore_stream.notifications.significance import Signal

HOUR_S = 3600.0


class PacingRules(msgspec.Struct, frozen=True):
    # One alert per kind per entity every 10 minutes: a score bouncing around is one story.
    cooldown_s: float = 600.0
    # Twenty immediate alerts an hour per subscription and entity is already a lot to read.
    cap_per_hour: int = 20
    # A digest every 15 minutes at most: timely, yet a quiet inbox.
    digest_interval_s: float = 900.0
    # A digest names at most 50 items (and counts the rest).
    digest_max: int = 50


DEFAULT_PACING = PacingRules()


class Pacing(msgspec.Struct, frozen=True):
    last_sent: dict[str, float] = {}  # kind -> when it was last sent
    sent_at: tuple[float, ...] = ()  # immediate sends within the last hour
    digest: tuple[Signal, ...] = ()  # the newest grouped items
    digest_since: float | None = None  # when the oldest grouped item came
    digest_count: int = 0  # items grouped since then


class Digest(msgspec.Struct, frozen=True):
    items: tuple[Signal, ...]
    count: int  # items grouped (>= len(items))
    since: float


def pace(
    state: Pacing, signals: Sequence[Signal], now: float, rules: PacingRules = DEFAULT_PACING
) -> tuple[Pacing, list[Signal], Digest | None]:
    """(state', signals to send now, the digest if it is due now)."""
    last_sent = dict(state.last_sent)
    recent = [t for t in state.sent_at if now - t < HOUR_S]
    send: list[Signal] = []
    grouped: list[Signal] = []
    for signal in signals:
        if signal.severity == "critical":
            send.append(signal)
        elif (
            signal.severity == "low"
            or now - last_sent.get(signal.kind, float("-inf")) < rules.cooldown_s
            or len(recent) >= rules.cap_per_hour
        ):
            grouped.append(signal)
            continue
        else:
            send.append(signal)
            recent.append(now)
        last_sent[signal.kind] = now
    digest = (*state.digest, *grouped)[-rules.digest_max :]
    count = state.digest_count + len(grouped)
    since = state.digest_since if state.digest_since is not None else (now if grouped else None)
    due: Digest | None = None
    if since is not None and digest and now - since >= rules.digest_interval_s:
        due = Digest(digest, count, since)
        digest, count, since = (), 0, None
    return (
        Pacing(
            last_sent=last_sent,
            sent_at=tuple(recent[-rules.cap_per_hour :]),
            digest=digest,
            digest_since=since,
            digest_count=count,
        ),
        send,
        due,
    )


def flush(
    state: Pacing, now: float, rules: PacingRules = DEFAULT_PACING
) -> tuple[Pacing, Digest | None]:
    """The digest if it is due at `now` (a timer calls this between observations)."""
    if state.digest_since is None or not state.digest:
        return state, None
    if now - state.digest_since < rules.digest_interval_s:
        return state, None
    due = Digest(state.digest, state.digest_count, state.digest_since)
    return msgspec.structs.replace(state, digest=(), digest_since=None, digest_count=0), due


def group(state: Pacing, signal: Signal, now: float, rules: PacingRules = DEFAULT_PACING) -> Pacing:
    """`state` with `signal` added to its digest (a cap elsewhere held it back)."""
    return msgspec.structs.replace(
        state,
        digest=(*state.digest, signal)[-rules.digest_max :],
        digest_count=state.digest_count + 1,
        digest_since=now if state.digest_since is None else state.digest_since,
    )
