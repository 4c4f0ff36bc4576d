"""Checks shared by the reliability drills: score history read straight from the database,
and the invariants every drill asserts on it."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool


def history_by_entity(url: str) -> dict[str, list[tuple[int, float]]]:
    """(version, score) rows per entity, by version, from `score_history` at `url`."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT entity, version, score FROM score_history ORDER BY entity, version")
            ).all()
    finally:
        engine.dispose()
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for entity, version, score in rows:
        out[entity].append((int(version), float(score)))
    return dict(out)


def history_problems(
    history: dict[str, list[tuple[int, float]]], scores: dict[str, dict[str, Any]]
) -> list[str]:
    """What is wrong with the stored history of the entities in `scores` (REST answers):
    versions must be exactly 1..n, and the newest must be the version and score served (an
    NFT is scored on read, so after a change of its collection it may serve the next version,
    not stored until the NFT itself changes: web/scores.py)."""
    problems: list[str] = []
    for entity, body in scores.items():
        rows = history.get(entity, [])
        versions = [v for v, _ in rows]
        if versions != list(range(1, len(versions) + 1)):
            problems.append(f"{entity}: versions {versions} are not 1..{len(versions)}")
        if not rows:
            problems.append(f"{entity}: no history")
            continue
        newest, score = rows[-1]
        if entity.startswith("nft:") and body["version"] == newest + 1 and body["score"] != score:
            continue  # scored on read after its collection changed: the next version, pending
        if (newest, score) != (body["version"], body["score"]):
            problems.append(
                f"{entity}: newest history row is v{newest} score {score}, the API serves "
                f"v{body['version']} score {body['score']}"
            )
    return problems
