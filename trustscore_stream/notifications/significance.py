"""Significance detection (pure): which published score changes of a watched entity deserve a
notification, per subscription (CONTRACT §5 kinds).

`detect(state, obs, prefs, rules)` folds one score change (`Observation`) of one entity into
the per-(subscription, entity) `WatchState` and returns the new state and the `Signal`s it
raises. No clock, no I/O, no Faust: time is `obs.at` only, so the same observations always
give the same signals. The watch's clock is the latest `at` it has seen: a late observation
counts as happening then, so windows never run backwards. The reference of a change is the
score this watch saw last (`obs.previous_score` only for its first observation): deltas are
published only for significant moves, and a watch compares what its reader was shown.

Detectors, in the order their signals are returned (constants in `Rules`):

- fraud_finding: every new fraud finding, at the finding's severity (an unknown severity
  counts as high); every new evidence line a factor marks as severe, at high: a factor's own
  fraud evidence (a wash-trading ring, a stolen token in the chain) is the same story for the
  reader as a reported finding. At most `max_evidence_signals` lines per observation.
- risk_level_change: the level differs from the last one seen: to high_risk is critical, any
  other worsening high, an improvement low.
- score_threshold: the score falls below `min_score`: high, critical if the level is
  high_risk. It fires once, then re-arms only after the score rises above
  `min_score + threshold_hysteresis`, so a score hovering around the line is one notification.
  A watch that starts below the line (or whose `min_score` changed) is armed only once the
  score has been above the line.
- score_change: the score moved by at least `score_change_pct` % (the subscription's
  `change_pct`, as a magnitude, overrides it) from the highest (a fall) or lowest (a rise)
  score of the last `score_window_s`; a fall wins if both qualify. A fall is medium (high from
  `severe_factor` times the percentage), a rise low. After it fires the window restarts at the
  current score, so a continuing slide fires again only after a further such move.
- anomaly: the change's z-score against the running (Welford) mean and sample variance of this
  watch's past changes, |z| >= `anomaly_z`, once `anomaly_warmup` changes are known; the
  deviation is floored at `anomaly_min_std` so a run of identical changes does not make any
  small move infinitely surprising. Medium; high for a fall with |z| >= `anomaly_severe_z`.
- trend_reversal: the slope (points/hour) is an exponential moving average of the slopes
  between consecutive observations, weighted by time with time constant `trend_tau_s`
  (a gap Δt keeps e^(−Δt/τ) of the old average; a move Δs adds about Δs/τ, however close
  together the moves come, so bursts and noise do not read as steep slopes). A direction is
  established once |slope| >= `trend_min_slope` (after `trend_warmup` moves), and a reversal
  is the slope reaching that magnitude with the opposite sign (the band between is
  hysteresis). Medium when it turns down, low when it turns up.
- price_movement: a collection's floor (when the observation carries one) moved by at least
  `price_change_pct` % within `price_window_s`, measured as for score_change; a fall medium
  (high from `severe_factor` times), a rise low.

Windows keep only candidate extremes (a monotonic queue: later values that dominate earlier
ones drop them), at most `window_samples` per side, and forget samples older than the window:
`WatchState` stays small and msgspec-encodable (`encode_watch`, `decode_watch`) for a
changelog-backed table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import msgspec

SEVERITIES: Final = ("low", "medium", "high", "critical")
# Worst to best (CONTRACT §3): a level's index orders levels by trust.
LEVELS: Final = ("high_risk", "caution", "moderate", "high_trust")
HOUR: Final = 3600.0
# Decimal amounts are inexact in binary: a floor going 1.0 → 0.8 must be the 20 % it reads as.
PCT_TOLERANCE: Final = 1e-9

Fact = float | str | None
Sample = tuple[float, float]  # (watch time, value)


class Finding(msgspec.Struct, frozen=True):
    finding: str  # CONTRACT §2 finding kind: wash_trading, stolen, ...
    severity: str  # low | medium | high | critical
    confidence: float  # 0–1
    event_id: str | None = None  # the fraud_finding event that reported it


class Observation(msgspec.Struct, frozen=True):
    """One published score change of one entity."""

    entity: str
    at: float  # unix seconds
    score: float
    level: str
    previous_score: float | None
    previous_level: str | None
    cause_event_id: str | None
    factors_changed: tuple[str, ...] = ()
    floor_price: float | None = None  # collections: current floor when known
    new_findings: tuple[Finding, ...] = ()  # fraud findings first seen with this change
    high_severity_evidence: tuple[str, ...] = ()  # new evidence lines a factor marks as severe


class Preferences(msgspec.Struct, frozen=True):
    """Per subscription (CONTRACT §5)."""

    min_score: float = 50.0
    # User-defined relative score change that matters, %, either way (0: every move).
    change_pct: float | None = None


class Signal(msgspec.Struct, frozen=True):
    """A significant change for one subscription. `cause_event_id` is the observation's, or
    for a reported finding the finding's own event. `facts` always has `score`, `level`,
    `previous` and `previous_level` (what this watch saw before, or None), plus per kind:

    - score_threshold: `threshold`;
    - risk_level_change: `direction` ("worse" | "better" | "other");
    - score_change: `change_pct` (signed), `base` (the window's extreme it is measured from),
      `since_s` (seconds since that extreme), `window_s`, `direction` ("down" | "up");
    - anomaly: `change`, `z`, `mean`, `std`, `samples`;
    - trend_reversal: `slope` and `previous_slope` (EMA, points/hour), `direction` (the new one);
    - price_movement: `floor`, `previous_floor` (the window's extreme), `change_pct`,
      `since_s`, `window_s`, `direction`;
    - fraud_finding: `finding` (a finding kind, or "severe_evidence"), `finding_severity`
      (as reported, or None), `confidence`, `finding_event_id`, `evidence` (the evidence
      line, or None).
    """

    kind: str
    severity: str  # low | medium | high | critical
    entity: str
    cause_event_id: str | None
    at: float
    facts: dict[str, Fact]


class Rules(msgspec.Struct, frozen=True):
    # 2 points: well above the 0.1 score resolution and the 0.5 delta threshold, so noise
    # around the line cannot re-arm it, yet a real recovery does.
    threshold_hysteresis: float = 2.0
    # A 15 % slide within an hour is fast for a score driven by days of history.
    score_change_pct: float = 15.0
    score_window_s: float = HOUR
    # Floors swing daily; ±20 % within a day is beyond ordinary volatility.
    price_change_pct: float = 20.0
    price_window_s: float = 24 * HOUR
    # Twice the threshold percentage is a collapse, not a move: one severity up.
    severe_factor: float = 2.0
    # Scores near 0 would make any move a huge percentage: measure from at least 1 point.
    pct_base_floor: float = 1.0
    # A floor below a billionth of a currency unit is dust, not a price to measure from.
    price_base_floor: float = 1e-9
    # Candidate extremes kept per window side: ample for monotonic queues, small to store.
    window_samples: int = 32
    # Slopes are averaged over about two hours: long enough that minute-to-minute noise
    # cancels, short enough that a turn shows within the afternoon it happens.
    trend_tau_s: float = 2 * HOUR
    # 1 point/hour (24 a day) is a trend a reader notices; slower drift is decay.
    trend_min_slope: float = 1.0
    # Moves before a direction may be established: one or two moves are not a trend.
    trend_warmup: int = 3
    # 3 standard deviations: rare (≈0.3 % for normal changes), the usual outlier line.
    anomaly_z: float = 3.0
    # Twice as far out: a fall this surprising is urgent.
    anomaly_severe_z: float = 6.0
    # Twenty changes before the mean and variance mean anything.
    anomaly_warmup: int = 20
    # Half a point, the delta threshold: below it a deviation is rounding.
    anomaly_min_std: float = 0.5
    # More severe lines in one change are one story: the score's evidence lists the rest.
    max_evidence_signals: int = 5


DEFAULT_RULES = Rules()


class Window(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Extremes of a sliding window, oldest first: `hi` holds candidate maxima (values
    strictly falling), `lo` candidate minima (values strictly rising)."""

    hi: tuple[Sample, ...] = ()
    lo: tuple[Sample, ...] = ()


class Moments(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Welford's running count, mean and sum of squared deviations of the score changes."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0


class Trend(msgspec.Struct, frozen=True, array_like=True, gc=False):
    ema: float = 0.0  # time-weighted average slope, points/hour
    slopes: int = 0  # moves seen, counted up to `trend_warmup` only
    direction: int = 0  # established direction: -1, 0 (none yet), +1
    extreme: float = 0.0  # the strongest EMA in that direction (for the reversal's facts)


class WatchState(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Per (subscription, entity). Array-like for a compact changelog: append new fields
    last, with defaults, so stored states still decode."""

    at: float | None = None  # the watch's clock: latest `obs.at` seen; None = nothing seen
    score: float | None = None  # last score seen
    level: str | None = None  # last level seen
    armed: bool = True  # a fall below `armed_for` fires score_threshold
    armed_for: float | None = None  # the min_score `armed` refers to
    scores: Window = Window()
    floors: Window = Window()
    changes: Moments = Moments()
    trend: Trend = Trend()


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(WatchState)


def encode_watch(state: WatchState) -> bytes:
    return _encoder.encode(state)


def decode_watch(raw: bytes) -> WatchState:
    return _decoder.decode(raw)


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _rank(level: str | None) -> int | None:
    return LEVELS.index(level) if level in LEVELS else None


# Windows ------------------------------------------------------------------------------------


def _slide(w: Window, now: float, span: float) -> Window:
    """Forget samples older than `span` seconds before `now`."""
    start = now - span
    return Window(tuple(s for s in w.hi if s[0] >= start), tuple(s for s in w.lo if s[0] >= start))


def _push(w: Window, now: float, value: float, cap: int) -> Window:
    # A new value dominates every older candidate it matches or beats: they can never be the
    # extreme again while it is in the window.
    hi = [s for s in w.hi if s[1] > value]
    lo = [s for s in w.lo if s[1] < value]
    hi.append((now, value))
    lo.append((now, value))
    return Window(tuple(hi[-cap:]), tuple(lo[-cap:]))


def _move(w: Window, value: float, limit: float, base_floor: float) -> tuple[float, Sample] | None:
    """(signed % change, base sample) when `value` moved at least `limit` % from the window's
    maximum (checked first) or minimum."""
    for side in (w.hi, w.lo):
        if not side:
            continue
        base = side[0]
        pct = (value - base[1]) / max(base[1], base_floor) * 100.0
        if not math.isfinite(pct):
            continue  # absurd magnitudes (a floor near 1e308) are no measurable move
        if pct != 0.0 and abs(pct) >= limit * (1.0 - PCT_TOLERANCE):
            return pct, base
    return None


# Detectors ----------------------------------------------------------------------------------


def _fraud(obs: Observation, rules: Rules) -> list[tuple[str, dict[str, Fact]]]:
    out: list[tuple[str, dict[str, Fact]]] = []
    for f in obs.new_findings:
        severity = f.severity if f.severity in SEVERITIES else "high"
        facts: dict[str, Fact] = {
            "finding": f.finding,
            "finding_severity": f.severity,  # as reported; the signal's is a known one
            "confidence": f.confidence,
            "finding_event_id": f.event_id,
            "evidence": None,
        }
        out.append((severity, facts))
    for line in obs.high_severity_evidence[: max(0, rules.max_evidence_signals)]:
        facts = {
            "finding": "severe_evidence",
            "finding_severity": None,
            "confidence": None,
            "finding_event_id": None,
            "evidence": line,
        }
        out.append(("high", facts))
    return out


def _level_severity(previous: str, level: str) -> tuple[str, str]:
    """(severity, direction) of a level change."""
    if level == "high_risk":
        return "critical", "worse"
    old, new = _rank(previous), _rank(level)
    if old is None or new is None:
        return "medium", "other"  # an unknown level name: neither better nor worse is known
    return ("high", "worse") if new < old else ("low", "better")


def _threshold(
    state: WatchState, reference: float | None, score: float, prefs: Preferences, rules: Rules
) -> tuple[bool, bool]:
    """(armed after, fired)."""
    line = prefs.min_score
    if state.at is None or state.armed_for != line:
        # A new watch or a new line: armed only if the last known score was not below it.
        armed = reference is None or reference >= line
    else:
        armed = state.armed
    if not armed and score > line + rules.threshold_hysteresis:
        armed = True
    if armed and score < line:
        return False, True
    return armed, False


def _anomaly(
    m: Moments, change: float, rules: Rules
) -> tuple[Moments, tuple[str, dict[str, Fact]] | None]:
    """Moments with `change` added and, if it is an outlier against the old ones, (severity,
    facts): the change is judged before it joins its own baseline."""
    found: tuple[str, dict[str, Fact]] | None = None
    if m.n >= max(2, rules.anomaly_warmup):  # a sample variance needs two changes
        std = math.sqrt(max(m.m2, 0.0) / (m.n - 1))
        z = (change - m.mean) / max(std, rules.anomaly_min_std)
        if abs(z) >= rules.anomaly_z:
            severe = change < 0 and abs(z) >= rules.anomaly_severe_z
            facts: dict[str, Fact] = {
                "change": change,
                "z": z,
                "mean": m.mean,
                "std": std,
                "samples": float(m.n),
            }
            found = ("high" if severe else "medium", facts)
    n = m.n + 1
    delta = change - m.mean
    mean = m.mean + delta / n
    return Moments(n, mean, m.m2 + delta * (change - mean)), found


def _trend(
    t: Trend, change: float, dt: float, rules: Rules
) -> tuple[Trend, tuple[float, float, int] | None]:
    """New trend after a move of `change` points `dt` seconds after the last one and, on a
    reversal, (previous extreme, new slope, new direction)."""
    x = max(dt, 0.0) / rules.trend_tau_s
    # (1 − e^(−x)) / x: the weight of the new slope divided by the gap, so a gap of 0 is
    # well-defined (→ 1) and the update is about change/τ for close moves.
    gain = -math.expm1(-x) / x if x > 0 else 1.0
    ema = t.ema * math.exp(-x) + change * HOUR / rules.trend_tau_s * gain
    slopes = min(t.slopes + 1, rules.trend_warmup)
    direction, extreme = t.direction, t.extreme
    reversal: tuple[float, float, int] | None = None
    if slopes >= rules.trend_warmup and abs(ema) >= rules.trend_min_slope:
        sign = 1 if ema > 0 else -1
        if sign != direction:
            if direction != 0:
                reversal = (extreme, ema, sign)
            direction, extreme = sign, ema
        elif abs(ema) > abs(extreme):
            extreme = ema
    return Trend(ema, slopes, direction, extreme), reversal


def _moved_severity(pct: float, limit: float, rules: Rules) -> str:
    if pct > 0:
        return "low"
    return "high" if -pct >= limit * rules.severe_factor else "medium"


def detect(
    state: WatchState, obs: Observation, prefs: Preferences, rules: Rules = DEFAULT_RULES
) -> tuple[WatchState, list[Signal]]:
    """Fold one observation into the watch: (state', signals in detector order)."""
    score = _finite(obs.score)
    if score is None or not math.isfinite(obs.at):
        return state, []  # nothing comparable: keep the state unpoisoned
    seen = state.at is not None
    now = obs.at if state.at is None else max(state.at, obs.at)
    reference = state.score if seen else _finite(obs.previous_score)
    previous_level = state.level if seen else obs.previous_level
    base: dict[str, Fact] = {
        "score": score,
        "level": obs.level,
        "previous": reference,
        "previous_level": previous_level,
    }
    found: list[tuple[str, str, dict[str, Fact]]] = []  # (kind, severity, extra facts)

    for severity, facts in _fraud(obs, rules):
        found.append(("fraud_finding", severity, facts))

    if previous_level is not None and previous_level != obs.level:
        severity, direction = _level_severity(previous_level, obs.level)
        found.append(("risk_level_change", severity, {"direction": direction}))

    armed, crossed = _threshold(state, reference, score, prefs, rules)
    if crossed:
        severity = "critical" if obs.level == "high_risk" else "high"
        found.append(("score_threshold", severity, {"threshold": prefs.min_score}))

    limit = rules.score_change_pct if prefs.change_pct is None else abs(prefs.change_pct)
    scores = _slide(state.scores, now, rules.score_window_s)
    moved = _move(scores, score, limit, rules.pct_base_floor)
    if moved is None:
        scores = _push(scores, now, score, rules.window_samples)
    else:
        pct, (t0, v0) = moved
        facts = {
            "change_pct": pct,
            "base": v0,
            "since_s": now - t0,
            "window_s": rules.score_window_s,
            "direction": "down" if pct < 0 else "up",
        }
        found.append(("score_change", _moved_severity(pct, limit, rules), facts))
        scores = Window(((now, score),), ((now, score),))  # the next move starts from here

    changes, trend = state.changes, state.trend
    if reference is not None:
        changes, anomalous = _anomaly(changes, score - reference, rules)
        if anomalous is not None:
            found.append(("anomaly", *anomalous))
    if state.at is not None and reference is not None:
        trend, reversal = _trend(trend, score - reference, now - state.at, rules)
        if reversal is not None:
            before, after, turn = reversal
            facts = {
                "slope": after,
                "previous_slope": before,
                "direction": "up" if turn > 0 else "down",
            }
            found.append(("trend_reversal", "low" if turn > 0 else "medium", facts))

    floors = _slide(state.floors, now, rules.price_window_s)
    floor = _finite(obs.floor_price)
    if floor is not None and floor > 0:
        limit = rules.price_change_pct
        moved = _move(floors, floor, limit, rules.price_base_floor)
        if moved is None:
            floors = _push(floors, now, floor, rules.window_samples)
        else:
            pct, (t0, v0) = moved
            facts = {
                "floor": floor,
                "previous_floor": v0,
                "change_pct": pct,
                "since_s": now - t0,
                "window_s": rules.price_window_s,
                "direction": "down" if pct < 0 else "up",
            }
            found.append(("price_movement", _moved_severity(pct, limit, rules), facts))
            floors = Window(((now, floor),), ((now, floor),))

    new_state = WatchState(
        at=now,
        score=score,
        level=obs.level,
        armed=armed,
        armed_for=prefs.min_score,
        scores=scores,
        floors=floors,
        changes=changes,
        trend=trend,
    )
    signals = [
        Signal(kind, severity, obs.entity, _cause(kind, facts, obs), obs.at, {**base, **facts})
        for kind, severity, facts in found
    ]
    return new_state, signals


def _cause(kind: str, facts: dict[str, Fact], obs: Observation) -> str | None:
    """A reported finding's own event is its most precise cause."""
    if kind == "fraud_finding":
        event = facts.get("finding_event_id")
        if isinstance(event, str):
            return event
    return obs.cause_event_id


def detect_all(
    state: WatchState,
    observations: Sequence[Observation],
    prefs: Preferences,
    rules: Rules = DEFAULT_RULES,
) -> tuple[WatchState, list[Signal]]:
    """A left fold of `detect`: the signals of every observation, in order."""
    out: list[Signal] = []
    for obs in observations:
        state, signals = detect(state, obs, prefs, rules)
        out.extend(signals)
    return state, out
