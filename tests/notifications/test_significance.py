"""Significance detection: one unit test per detector rule, and properties over random
sequences (hysteresis, warm-up, bounded state, determinism, changelog round trip)."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterable, Sequence

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from trustscore_stream.notifications.content import KINDS as CONTENT_KINDS
from trustscore_stream.notifications.significance import (
    DEFAULT_RULES,
    LEVELS,
    SEVERITIES,
    Finding,
    Observation,
    Preferences,
    Rules,
    Signal,
    WatchState,
    decode_watch,
    detect,
    detect_all,
    encode_watch,
)
from trustscore_stream.scoring.model import level_for

# NOTIFICATIONS_EXAMPLES=2000 for a deeper run; the default keeps the file at about a second.
EXAMPLES = int(os.environ.get("NOTIFICATIONS_EXAMPLES", "60"))
FAST = settings(max_examples=EXAMPLES, deadline=None, database=None)

T0 = 1_790_000_000.0
MINUTE = 60.0
HOUR = 3600.0
ENTITY = "collection:eth:0x" + "c0" * 20
KINDS = set(CONTENT_KINDS) - {"market_condition"}  # nothing detects market conditions
H = DEFAULT_RULES.threshold_hysteresis
PREFS = Preferences()
FRESH = WatchState()


def ob(
    score: float,
    at: float,
    *,
    previous: float | None = None,
    level: str | None = None,
    previous_level: str | None = None,
    floor: float | None = None,
    findings: Sequence[Finding] = (),
    evidence: Sequence[str] = (),
    cause: str | None = "ev",
) -> Observation:
    if previous_level is None and previous is not None:
        previous_level = level_for(previous)
    return Observation(
        entity=ENTITY,
        at=at,
        score=score,
        level=level if level is not None else level_for(score),
        previous_score=previous,
        previous_level=previous_level,
        cause_event_id=cause,
        floor_price=floor,
        new_findings=tuple(findings),
        high_severity_evidence=tuple(evidence),
    )


def series(
    scores: Iterable[float],
    *,
    step: float = MINUTE,
    start: float = T0,
    previous: float | None = None,
) -> list[Observation]:
    """Observations `step` seconds apart, each naming the one before as its previous."""
    out = []
    for i, s in enumerate(scores):
        out.append(ob(s, start + i * step, previous=previous, cause=f"ev{i}"))
        previous = s
    return out


def run(
    observations: Iterable[Observation],
    prefs: Preferences = PREFS,
    rules: Rules = DEFAULT_RULES,
    state: WatchState = FRESH,
) -> tuple[WatchState, list[list[Signal]]]:
    """Final state and the signals of each observation."""
    per: list[list[Signal]] = []
    for o in observations:
        state, signals = detect(state, o, prefs, rules)
        per.append(signals)
    return state, per


def of(kind: str, per: list[list[Signal]]) -> list[Signal]:
    return [s for signals in per for s in signals if s.kind == kind]


def at_index(kind: str, per: list[list[Signal]]) -> list[int]:
    return [i for i, signals in enumerate(per) for s in signals if s.kind == kind]


# score_threshold ----------------------------------------------------------------------------


def test_threshold_fires_on_a_fall_below_min_score() -> None:
    _, per = run(series([70.0, 49.0]))
    [sig] = of("score_threshold", per)
    assert sig.severity == "high"
    assert sig.entity == ENTITY and sig.cause_event_id == "ev1" and sig.at == T0 + MINUTE
    assert sig.facts["threshold"] == 50.0
    assert sig.facts["score"] == 49.0 and sig.facts["previous"] == 70.0
    assert sig.facts["level"] == "caution"


def test_threshold_in_high_risk_is_critical() -> None:
    _, per = run(series([70.0, 35.0]))
    assert [s.severity for s in of("score_threshold", per)] == ["critical"]


def test_threshold_at_min_score_is_not_below() -> None:
    _, per = run(series([70.0, 50.0]))
    assert of("score_threshold", per) == []


def test_threshold_hovering_in_the_band_fires_once() -> None:
    _, per = run(series([70.0, 49.0, 51.0, 49.5, 50.0 + H, 48.0]))
    assert at_index("score_threshold", per) == [1]


def test_threshold_rearms_above_the_band() -> None:
    _, per = run(series([70.0, 49.0, 50.0 + H + 0.1, 49.0]))
    assert at_index("score_threshold", per) == [1, 3]


def test_threshold_watch_that_starts_below_waits_for_a_rise() -> None:
    # First observation: previous 40, already below 50: not a crossing this watch saw.
    obs = series([39.0, 45.0, 53.0, 49.0], previous=40.0)
    _, per = run(obs)
    assert at_index("score_threshold", per) == [3]


def test_threshold_first_score_of_an_entity_below_fires() -> None:
    _, per = run([ob(30.0, T0)])
    assert [s.severity for s in of("score_threshold", per)] == ["critical"]


def test_threshold_new_min_score_rearms_from_the_last_score() -> None:
    state, per = run(series([70.0, 49.0]))
    assert len(of("score_threshold", per)) == 1
    # Raised to 60: the last score (49) is below the new line, so 55 is no crossing.
    _, per = run([ob(55.0, T0 + HOUR)], Preferences(min_score=60.0), state=state)
    assert of("score_threshold", per) == []
    # Lowered to 40: the last score (49) was above it, so 39 is a crossing.
    _, per = run([ob(39.0, T0 + HOUR)], Preferences(min_score=40.0), state=state)
    assert len(of("score_threshold", per)) == 1


# risk_level_change --------------------------------------------------------------------------


def test_level_change_severity_by_direction_and_target() -> None:
    _, per = run(series([85.0, 70.0, 50.0, 30.0, 45.0, 82.0, 83.0]))
    got = [
        (s.facts["previous_level"], s.facts["level"], s.severity)
        for s in of("risk_level_change", per)
    ]
    assert got == [
        ("high_trust", "moderate", "high"),
        ("moderate", "caution", "high"),
        ("caution", "high_risk", "critical"),
        ("high_risk", "caution", "low"),
        ("caution", "high_trust", "low"),
    ]
    assert of("risk_level_change", per)[0].facts["direction"] == "worse"


def test_level_change_on_first_observation_uses_its_previous_level() -> None:
    _, per = run([ob(79.0, T0, previous=80.0)])
    [sig] = of("risk_level_change", per)
    assert sig.facts["previous_level"] == "high_trust" and sig.severity == "high"


def test_level_unchanged_or_unknown_previous_is_silent() -> None:
    _, per = run(series([75.0, 65.0, 61.0]))
    assert of("risk_level_change", per) == []
    _, per = run([ob(30.0, T0)])  # an entity's first score: nothing changed
    assert of("risk_level_change", per) == []


def test_level_change_between_unknown_level_names_is_medium() -> None:
    state, _ = run([ob(70.0, T0, level="moderate")])
    _, per = run([ob(70.0, T0 + MINUTE, level="quarantined")], state=state)
    [sig] = of("risk_level_change", per)
    assert sig.severity == "medium" and sig.facts["direction"] == "other"


# score_change -------------------------------------------------------------------------------


def test_score_change_fall_of_15_pct_within_an_hour() -> None:
    _, per = run(series([80.0, 76.0, 72.0, 68.0], step=10 * MINUTE))
    [sig] = of("score_change", per)
    assert at_index("score_change", per) == [3]
    assert sig.severity == "medium"
    assert math.isclose(float(sig.facts["change_pct"] or 0), -15.0)
    assert sig.facts["base"] == 80.0 and sig.facts["direction"] == "down"
    assert sig.facts["since_s"] == 30 * MINUTE and sig.facts["window_s"] == HOUR


def test_score_change_outside_the_window_is_not_a_change() -> None:
    _, per = run(series([80.0, 76.0, 72.0, 68.0], step=25 * MINUTE))
    assert of("score_change", per) == []


def test_score_change_restarts_after_firing() -> None:
    _, per = run(series([80.0, 68.0, 66.0, 60.0, 57.0], step=MINUTE))
    # 80→68 fires; then measured from 68: 66 and 60 (−11.8 %) no, 57 (−16.2 %) yes.
    assert at_index("score_change", per) == [1, 4]


def test_score_change_rise_is_low_and_collapse_is_high() -> None:
    _, per = run(series([50.0, 60.0]))
    assert [(s.severity, s.facts["direction"]) for s in of("score_change", per)] == [("low", "up")]
    _, per = run(series([80.0, 50.0]))  # −37.5 %: beyond twice 15 %
    assert [s.severity for s in of("score_change", per)] == ["high"]


def test_score_change_subscription_pct_overrides_the_default() -> None:
    obs = series([80.0, 75.0])  # −6.25 %
    assert of("score_change", run(obs)[1]) == []
    assert len(of("score_change", run(obs, Preferences(change_pct=5.0))[1])) == 1
    assert len(of("score_change", run(obs, Preferences(change_pct=-5.0))[1])) == 1
    assert of("score_change", run(series([80.0, 60.0]), Preferences(change_pct=30.0))[1]) == []


def test_score_change_a_fall_wins_when_both_directions_qualify() -> None:
    # 40 → 80 is no change at 150 %; then, at 20 %, 60 is both −25 % from 80 and +50 % from 40.
    state, _ = run(series([40.0, 80.0]), Preferences(change_pct=150.0))
    _, per = run(
        [ob(60.0, T0 + 2 * MINUTE, previous=80.0)], Preferences(change_pct=20.0), state=state
    )
    assert [(s.facts["direction"], s.facts["base"]) for s in of("score_change", per)] == [
        ("down", 80.0)
    ]


def test_score_change_near_zero_is_measured_from_one_point() -> None:
    _, per = run(series([0.0, 0.1]))  # +0.1 point, not +∞ %
    assert of("score_change", per) == []


def test_score_change_window_restarts_on_a_late_observation_clock() -> None:
    # A late observation counts at the watch's clock: windows never run backwards.
    state, per = run([ob(80.0, T0 + HOUR), ob(68.0, T0, previous=80.0)])
    [sig] = of("score_change", per)
    assert sig.facts["since_s"] == 0.0 and sig.at == T0
    assert state.at == T0 + HOUR


# anomaly ------------------------------------------------------------------------------------


def _noise(n: int, around: float = 60.0) -> list[float]:
    """n + 1 scores whose n changes alternate ±0.5."""
    return [around + (0.5 if i % 2 else 0.0) for i in range(n + 1)]


def test_anomaly_fires_after_warm_up_on_a_big_change() -> None:
    scores = [*_noise(DEFAULT_RULES.anomaly_warmup), 40.0]
    _, per = run(series(scores))
    [sig] = of("anomaly", per)
    assert at_index("anomaly", per) == [len(scores) - 1]
    assert float(sig.facts["z"] or 0) <= -DEFAULT_RULES.anomaly_severe_z
    assert sig.severity == "high" and sig.facts["samples"] == DEFAULT_RULES.anomaly_warmup


def test_anomaly_not_during_warm_up() -> None:
    scores = [*_noise(DEFAULT_RULES.anomaly_warmup - 1), 40.0]
    _, per = run(series(scores))
    assert of("anomaly", per) == []


def test_anomaly_rise_is_medium() -> None:
    _, per = run(series([*_noise(DEFAULT_RULES.anomaly_warmup), 75.0]))
    assert [s.severity for s in of("anomaly", per)] == ["medium"]


def test_anomaly_deviation_is_floored() -> None:
    flat = [60.0] * (DEFAULT_RULES.anomaly_warmup + 1)  # 20 changes of exactly 0
    # z = change / 0.5: 1 point is z 2 (ordinary), 1.5 points is z 3 (an anomaly).
    assert of("anomaly", run(series([*flat, 61.0]))[1]) == []
    assert len(of("anomaly", run(series([*flat, 61.5]))[1])) == 1


def test_anomaly_ordinary_change_is_silent() -> None:
    _, per = run(series([*_noise(40), 61.0]))
    assert of("anomaly", per) == []


# trend_reversal -----------------------------------------------------------------------------


def test_trend_reversal_from_rising_to_falling() -> None:
    up = [50.0 + 2 * i for i in range(7)]  # +2 per 10 min: 12 points/hour
    down = [up[-1] - 2 * i for i in range(1, 9)]
    _, per = run(series(up + down, step=10 * MINUTE))
    [sig] = of("trend_reversal", per)
    assert sig.severity == "medium" and sig.facts["direction"] == "down"
    assert float(sig.facts["slope"] or 0) <= -DEFAULT_RULES.trend_min_slope
    assert float(sig.facts["previous_slope"] or 0) >= DEFAULT_RULES.trend_min_slope
    assert at_index("trend_reversal", per)[0] > len(up)  # not on the first step down


def test_trend_reversal_from_falling_to_rising_is_low() -> None:
    down = [80.0 - 2 * i for i in range(7)]
    up = [down[-1] + 2 * i for i in range(1, 9)]
    _, per = run(series(down + up, step=10 * MINUTE))
    assert [(s.severity, s.facts["direction"]) for s in of("trend_reversal", per)] == [
        ("low", "up")
    ]


def test_trend_needs_warm_up() -> None:
    obs = series([50.0, 60.0, 45.0], step=10 * MINUTE)
    # One steep move up then one down: no direction is established yet...
    assert of("trend_reversal", run(obs)[1]) == []
    # ...though without the warm-up the same moves are a reversal.
    assert len(of("trend_reversal", run(obs, rules=Rules(trend_warmup=1))[1])) == 1


def test_trend_noise_and_slow_drift_are_not_trends() -> None:
    # ±0.5 every minute: the moves cancel within the averaging time.
    noise = [60.0 + (0.5 if i % 2 else 0.0) for i in range(200)]
    assert of("trend_reversal", run(series(noise))[1]) == []
    # ±3 points every two days: a fraction of a point per hour either way.
    slow = [60.0 + (3.0 if (i // 8) % 2 else 0.0) for i in range(64)]
    assert of("trend_reversal", run(series(slow, step=6 * HOUR))[1]) == []


def test_trend_close_moves_count_over_the_time_constant() -> None:
    # A move a second (or no time) after the last adds about Δs/τ, not Δs per second.
    per_tau = 1.0 / (DEFAULT_RULES.trend_tau_s / HOUR)
    state, _ = run(series([50.0, 51.0], step=1.0))
    assert math.isclose(state.trend.ema, per_tau, rel_tol=1e-3)
    state, _ = run(series([50.0, 51.0], step=0.0))
    assert state.trend.ema == per_tau


# fraud_finding ------------------------------------------------------------------------------


def test_every_new_finding_is_a_signal_at_its_severity() -> None:
    findings = [
        Finding("wash_trading", "medium", 0.7, "f1"),
        Finding("stolen", "critical", 0.95, "f2"),
    ]
    _, per = run([ob(40.0, T0, previous=40.5, findings=findings, cause="c")])
    sigs = of("fraud_finding", per)
    assert [(s.facts["finding"], s.severity, s.cause_event_id) for s in sigs] == [
        ("wash_trading", "medium", "f1"),
        ("stolen", "critical", "f2"),
    ]
    assert sigs[1].facts["confidence"] == 0.95 and sigs[1].facts["evidence"] is None
    assert sigs[1].facts["finding_severity"] == "critical"


def test_finding_without_event_or_with_unknown_severity() -> None:
    _, per = run([ob(40.0, T0, findings=[Finding("other", "dire", 0.5)], cause="c")])
    [sig] = of("fraud_finding", per)
    assert sig.severity == "high" and sig.cause_event_id == "c"
    assert sig.facts["finding_severity"] == "dire"


def test_severe_evidence_is_a_high_fraud_finding_capped_per_observation() -> None:
    lines = [f"circular trade among {i + 3} wallets within 2h" for i in range(8)]
    _, per = run([ob(40.0, T0, evidence=lines, cause="c")])
    sigs = of("fraud_finding", per)
    assert len(sigs) == DEFAULT_RULES.max_evidence_signals
    assert {s.severity for s in sigs} == {"high"}
    assert [s.facts["evidence"] for s in sigs] == lines[: DEFAULT_RULES.max_evidence_signals]
    assert sigs[0].facts["finding"] == "severe_evidence" and sigs[0].cause_event_id == "c"


# price_movement -----------------------------------------------------------------------------


def _floors(floors: Sequence[float | None], step: float = HOUR) -> list[Observation]:
    return [ob(70.0, T0 + i * step, previous=70.0, floor=f) for i, f in enumerate(floors)]


def test_price_movement_floor_fall_of_20_pct_within_a_day() -> None:
    _, per = run(_floors([1.0, 0.9, None, 0.8]))
    [sig] = of("price_movement", per)
    assert at_index("price_movement", per) == [3]
    assert sig.severity == "medium" and sig.facts["direction"] == "down"
    assert sig.facts["floor"] == 0.8 and sig.facts["previous_floor"] == 1.0
    assert math.isclose(float(sig.facts["change_pct"] or 0), -20.0)
    assert sig.facts["window_s"] == 24 * HOUR and sig.facts["since_s"] == 3 * HOUR


def test_price_movement_rise_low_collapse_high() -> None:
    assert [s.severity for s in of("price_movement", run(_floors([1.0, 1.25]))[1])] == ["low"]
    assert [s.severity for s in of("price_movement", run(_floors([1.0, 0.5]))[1])] == ["high"]


def test_price_movement_outside_a_day_or_without_a_floor_is_silent() -> None:
    assert of("price_movement", run(_floors([1.0, 0.7], step=25 * HOUR))[1]) == []
    assert of("price_movement", run(_floors([1.0, 0.0, None, 0.85]))[1]) == []


def test_price_movement_from_dust_is_finite() -> None:
    # A floor of 1e-308 is measured as a billionth; a move beyond any float is no move.
    [sig] = of("price_movement", run(_floors([1e-308, 0.5]))[1])
    assert sig.facts["previous_floor"] == 1e-308
    assert math.isclose(float(sig.facts["change_pct"] or 0), 0.5 / 1e-9 * 100)
    assert of("price_movement", run(_floors([1e-9, 1e300]))[1]) == []


# detect as a whole --------------------------------------------------------------------------


def test_signals_come_in_detector_order() -> None:
    noise = series(_noise(DEFAULT_RULES.anomaly_warmup, around=81.0), step=MINUTE)
    state, _ = run(noise, Preferences(min_score=70.0))
    last = noise[-1]
    crash = ob(
        30.0,
        last.at + MINUTE,
        previous=last.score,
        floor=0.5,
        findings=[Finding("rug_pull", "critical", 0.9, "f")],
    )
    state, per = run(
        [ob(81.0, crash.at - 1, previous=last.score, floor=1.0), crash],
        Preferences(min_score=70.0),
        state=state,
    )
    assert [s.kind for s in per[1]] == [
        "fraud_finding",
        "risk_level_change",
        "score_threshold",
        "score_change",
        "anomaly",
        "price_movement",
    ]
    assert all(s.facts["score"] == 30.0 and s.facts["level"] == "high_risk" for s in per[1])


def test_non_finite_observation_is_ignored() -> None:
    state, _ = run(series([70.0, 60.0]))
    for bad in (ob(math.nan, T0 + HOUR), ob(50.0, math.inf)):
        assert detect(state, bad, Preferences()) == (state, [])


def test_detect_all_is_the_fold_of_detect() -> None:
    obs = series([80.0, 68.0, 49.0, 30.0, 55.0])
    state, per = run(obs)
    assert detect_all(WatchState(), obs, Preferences()) == (state, [s for p in per for s in p])


# Properties ---------------------------------------------------------------------------------

scores = st.one_of(
    st.sampled_from([0.0, 39.9, 40.0, 49.9, 50.0, 50.0, 51.0, 60.0, 60.0, 80.0, 100.0]),
    st.floats(0.0, 100.0),
)
GAPS = [0.0, 1.0, 60.0, 60.0, 600.0, 3600.0, 6 * 3600.0, 2 * 86400.0, -120.0]
gaps = st.sampled_from(GAPS)
floors = st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0, 1.0, 1.3]), st.floats(0.0, 1e6))
findings = st.builds(
    Finding,
    st.sampled_from(["wash_trading", "stolen", "other"]),
    st.sampled_from([*SEVERITIES, "unknown"]),
    st.floats(0.0, 1.0),
    st.one_of(st.none(), st.sampled_from(["f1", "f2"])),
)
prefs_st = st.builds(
    Preferences,
    st.floats(0.0, 100.0),
    st.one_of(st.none(), st.floats(-50.0, 200.0)),
)
Step = tuple[float, float, float | None, list[Finding], list[str], str | None]
steps: st.SearchStrategy[Step] = st.tuples(
    gaps,
    scores,
    floors,
    st.lists(findings, max_size=2),
    st.lists(st.sampled_from(["ring", "stolen"]), max_size=6),
    st.one_of(st.none(), st.sampled_from([*LEVELS, "unknown"])),  # None: the score's level
)


def build(first_previous: float | None, raw: list[Step]) -> list[Observation]:
    """Observations from drawn steps: time moves by the gap (sometimes backwards)."""
    out = []
    t, previous = T0, first_previous
    for gap, score, floor, fs, ev, level in raw:
        t += gap
        out.append(
            ob(score, t, previous=previous, floor=floor, findings=fs, evidence=ev, level=level)
        )
        previous = score
    return out


sequences = st.builds(build, st.one_of(st.none(), scores), st.lists(steps, max_size=60))


def walk(rng: random.Random, n: int) -> list[Observation]:
    """A long random sequence: drifting walks (monotone runs fill the windows), jumps, flat
    stretches, late observations, floors, findings and odd levels."""
    out = []
    t, score, floor = T0, rng.uniform(0, 100), rng.uniform(0.1, 10)
    previous: float | None = None
    drift = 0.0
    for _ in range(n):
        t += rng.choice(GAPS)
        if rng.random() < 0.05:
            drift = rng.uniform(-3, 3)
        move = rng.choice([0.0, drift, drift, rng.gauss(0, 2), rng.uniform(-60, 60)])
        score = min(100.0, max(0.0, score + move))
        floor = max(0.0, floor * rng.uniform(0.7, 1.35))
        fs = [Finding("other", rng.choice(SEVERITIES), rng.random())] if rng.random() < 0.05 else []
        ev = ["ring"] * rng.randrange(8) if rng.random() < 0.05 else []
        level = rng.choice([*LEVELS, "unknown"]) if rng.random() < 0.05 else None
        kept = floor if rng.random() < 0.6 else None
        out.append(
            ob(score, t, previous=previous, floor=kept, findings=fs, evidence=ev, level=level)
        )
        previous = score
    return out


@FAST
@given(st.data())
def test_hovering_around_min_score_fires_one_threshold(data: st.DataObject) -> None:
    line = data.draw(st.floats(5.0, 95.0), "min_score")
    start = data.draw(st.floats(line, 100.0), "start")
    crossing = data.draw(st.floats(line - H, line, exclude_max=True), "crossing")
    hover = data.draw(st.lists(st.floats(line - H, line + H), max_size=40), "hover")
    values = [start, crossing, *hover]
    times = data.draw(st.lists(gaps, min_size=len(values), max_size=len(values)), "gaps")
    obs = [ob(v, T0 + sum(times[: i + 1])) for i, v in enumerate(values)]
    _, per = run(obs, Preferences(min_score=line))
    assert at_index("score_threshold", per) == [1]


@FAST
@given(st.data())
def test_rise_above_band_rearms_the_threshold(data: st.DataObject) -> None:
    line = data.draw(st.floats(5.0, 95.0), "min_score")
    hover = data.draw(st.lists(st.floats(line - H, line + H), max_size=20), "hover")
    rearm = data.draw(st.floats(line + H, 100.0, exclude_min=True), "rearm")
    again = data.draw(st.floats(0.0, line, exclude_max=True), "again")
    values = [line + H + 1.0, line - 1.0, *hover, rearm, again]
    _, per = run(series(values), Preferences(min_score=line))
    assert at_index("score_threshold", per) == [1, len(values) - 1]


@FAST
@given(st.one_of(st.none(), scores), st.lists(steps, max_size=60))
def test_anomaly_never_fires_during_warm_up(first_previous: float | None, raw: list[Step]) -> None:
    _, per = run(build(first_previous, raw))
    # Observation i has i past changes when the first names a previous score, else i − 1.
    first_possible = DEFAULT_RULES.anomaly_warmup + (0 if first_previous is not None else 1)
    assert all(i >= first_possible for i in at_index("anomaly", per))


@FAST
@given(st.lists(st.sampled_from([50.0, 50.0, 50.5, 49.5, 90.0, 10.0]), max_size=21))
def test_anomaly_never_fires_during_warm_up_even_on_jumps(values: list[float]) -> None:
    _, per = run(series(values))  # at most 20 changes: all of them warm-up
    assert of("anomaly", per) == []


def _check_state(state: WatchState, rules: Rules) -> None:
    assert state.at is not None
    spans = ((state.scores, rules.score_window_s), (state.floors, rules.price_window_s))
    for window, span in spans:
        for side in (window.hi, window.lo):
            assert len(side) <= rules.window_samples
            assert all(state.at - span <= t <= state.at for t, _ in side)
    assert state.trend.slopes <= rules.trend_warmup


def _check_signal(sig: Signal) -> None:
    assert sig.kind in KINDS and sig.severity in SEVERITIES
    assert {"score", "level", "previous", "previous_level"} <= sig.facts.keys()
    # A notification record carries it: it must encode (and come back the same).
    assert msgspec.json.decode(msgspec.json.encode(sig), type=Signal) == sig


SMALL = Rules(window_samples=3, anomaly_warmup=5, trend_warmup=1)


@FAST
@given(st.integers(0, 2**64), prefs_st, st.sampled_from([DEFAULT_RULES, SMALL]))
def test_long_sequences_never_raise_and_state_stays_bounded(
    seed: int, prefs: Preferences, rules: Rules
) -> None:
    # One seed per example: a drawn list of 500 steps would be too much input to shrink.
    rng = random.Random(seed)
    state = FRESH
    longest = 0
    for o in walk(rng, 500):
        state, signals = detect(state, o, prefs, rules)
        _check_state(state, rules)
        longest = max(longest, len(state.scores.hi), len(state.scores.lo))
        for sig in signals:
            _check_signal(sig)
    # A few numbers plus 4 window sides of at most `window_samples` (t, value) pairs.
    assert len(encode_watch(state)) <= 160 + 4 * rules.window_samples * 20


def test_windows_fill_up_to_their_cap() -> None:
    # An hour of steady small rises: every sample is a candidate minimum, up to the cap.
    rising = [50.0 + 0.01 * i for i in range(100)]
    state, _ = run(series(rising, step=30.0))
    assert len(state.scores.lo) == DEFAULT_RULES.window_samples
    assert len(state.scores.hi) == 1


@FAST
@given(st.lists(st.tuples(scores, floors, gaps), max_size=40), prefs_st)
def test_non_finite_inputs_never_raise(
    raw: list[tuple[float, float | None, float]], prefs: Preferences
) -> None:
    weird = [math.nan, math.inf, -math.inf]
    state = FRESH
    t = T0
    for i, (score, floor, gap) in enumerate(raw):
        t += gap
        s = weird[i % 3] if i % 5 == 4 else score
        f = weird[i % 3] if i % 3 == 2 else floor
        state, signals = detect(state, ob(s, t, previous=weird[i % 3], floor=f), prefs)
        for sig in signals:
            _check_signal(sig)
            assert all(not isinstance(v, float) or math.isfinite(v) for v in sig.facts.values())


@FAST
@given(sequences, prefs_st)
def test_same_observations_give_same_signals(obs: list[Observation], prefs: Preferences) -> None:
    first = run(obs, prefs)
    # Equal but not identical inputs: nothing may depend on object identity or the clock.
    copies = msgspec.msgpack.decode(msgspec.msgpack.encode(obs), type=list[Observation])
    assert run(copies, prefs) == first


@FAST
@given(sequences, prefs_st, st.integers(0, 60))
def test_watch_state_round_trips_mid_sequence(
    obs: list[Observation], prefs: Preferences, cut: int
) -> None:
    cut = min(cut, len(obs))
    whole_state, whole = run(obs, prefs)
    head_state, head = run(obs[:cut], prefs)
    restored = decode_watch(encode_watch(head_state))
    assert restored == head_state
    tail_state, tail = run(obs[cut:], prefs, state=restored)
    assert head + tail == whole
    assert tail_state == whole_state


def test_round_trip_keeps_a_live_state() -> None:
    # A state with every part in use survives the changelog codec.
    noise = series([*_noise(DEFAULT_RULES.anomaly_warmup), 62.0, 64.0, 66.0], step=10 * MINUTE)
    last = noise[-1]
    state, _ = run([*noise, ob(66.0, last.at + MINUTE, previous=66.0, floor=1.0)])
    assert state.scores.hi and state.floors.lo and state.changes.n and state.trend.ema
    assert decode_watch(encode_watch(state)) == state
