"""Every state and score of the golden corpora is byte-identical to the recorded digests.

The model may be made faster, but not different: any change of a state's encoding, a value,
a confidence or an evidence string fails here (tests/scoring/golden.py says how the digests
are made and how to regenerate them after an intended change of the model).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.scoring.golden import GOLDEN, corpora, digest


def _recorded() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", list(_recorded()))
def test_golden_digests(name: str) -> None:
    expected = _recorded()[name]
    events, checkpoint = next((ev, cp) for n, ev, cp in corpora() if n == name)
    got = digest(events, checkpoint)
    for part in ("states", "scores"):
        changed = sorted(
            g
            for g in expected[part].keys() | got[part].keys()
            if expected[part].get(g) != got[part].get(g)
        )
        assert not changed, f"{name}: {part} differ in {len(changed)} groups, e.g. {changed[:5]}"
    assert got["events"] == expected["events"]
    assert got["entities"] == expected["entities"]
    assert got["trace"] == expected["trace"], f"{name}: a checkpoint state or score differs"
    assert got["raw_factors"] == expected["raw_factors"], f"{name}: an unrounded factor differs"
