"""The fast rounding of factor values and confidences is exactly Python's `round`."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from trustscore_stream.scoring.model import _round, round_confidence, round_score


def _same(a: float, b: float) -> bool:
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def _check(x: float) -> None:
    assert _same(round_score(x), _round(x, 1)), x
    assert _same(round_confidence(x), _round(x, 3)), x


def test_ties_boundaries_and_specials() -> None:
    values = [0.0, -0.0, 1.0, 100.0, 0.05, 0.15, 0.25, 0.35, 0.45, 2.5, 99.95, 0.0005, 0.0015]
    values += [0.9995, 0.1235, 1e-12, -0.05, -2.25, 1e12, -1e12, 1e300, math.inf, -math.inf]
    values += [k / 20 for k in range(2001)] + [k / 2000 for k in range(2001)]
    values += [math.nextafter(v, d) for v in values[:30] for d in (-math.inf, math.inf)]
    for x in values:
        _check(x)
    assert math.isnan(round_score(math.nan)) and math.isnan(round_confidence(math.nan))


def test_random_values() -> None:
    rng = random.Random(7)
    for _ in range(200_000):
        _check(rng.uniform(0.0, 100.0))
        _check(rng.random())
        _check(rng.randint(0, 200_000) / 2_000)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_float(x: float) -> None:
    _check(x)
