"""What the reliability drills share: their opening mints, score history read straight from
the database, and the invariants every drill asserts on it."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.stack import Stack, scrape
from trustscore_stream.processes import WorkerProcess
from trustscore_stream.scoring.history import decode_history


def mints(contracts: list[str], tokens: int, holder: str, at: str) -> list[dict[str, Any]]:
    """Envelopes minting tokens 0..tokens-1 of every contract to `holder` at `at`."""
    return [
        {
            "event_id": f"m{c}-{t}",
            "type": "mint",
            "source": "chain",
            "occurred_at": at,
            "schema_version": 1,
            "contract": contract,
            "token_id": str(t),
            "payload": {"to": holder},
        }
        for c, contract in enumerate(contracts)
        for t in range(tokens)
    ]


def processed_events(worker: WorkerProcess) -> float:
    """Events the worker's lanes handed to scoring (the counter only: a prefix match would
    also take the `_created` timestamps and pass after the first event)."""
    return sum(
        v
        for k, v in scrape(worker).items()
        if k.startswith("trustscore_lane_events_processed_total")
    )


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


async def published_history(stack: Stack) -> dict[str, list[tuple[int, float]]]:
    """(version, score) per entity in the order scoring published them, read from the start
    of the history topic (every version a worker published, delivered or not yet)."""
    records = await stack.consume("trustscore-score-history", until=10**9, timeout=3.0)
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.value is not None
        for row in decode_history(record.value):
            out[row.entity].append((row.version, row.score))
    return dict(out)


def repeated_versions(published: dict[str, list[tuple[int, float]]]) -> list[str]:
    """Versions published more than once for one entity. Without input read twice (no
    crash, no stop between checkpoints) each version is published exactly once."""
    problems = []
    for entity, rows in published.items():
        counts = Counter(version for version, _ in rows)
        twice = sorted(v for v, n in counts.items() if n > 1)
        if twice:
            problems.append(f"{entity}: versions {twice} published more than once: {rows}")
    return problems


def conflicting_versions(published: dict[str, list[tuple[int, float]]]) -> list[str]:
    """Versions published with different scores for one entity. Input read again after a
    restart may publish a version again (at least once; the database keeps the first copy),
    but never a different score under the same number."""
    problems = []
    for entity, rows in published.items():
        scores: dict[int, set[float]] = defaultdict(set)
        for version, score in rows:
            scores[version].add(score)
        clashes = {v: sorted(s) for v, s in sorted(scores.items()) if len(s) > 1}
        if clashes:
            problems.append(f"{entity}: one version, several scores {clashes}: {rows}")
    return problems


def stored_as_published(
    published: dict[str, list[tuple[int, float]]], stored: dict[str, list[tuple[int, float]]]
) -> list[str]:
    """What differs between the published versions and the stored history: per entity the
    same versions (1..n, each once) with the same scores."""
    problems = repeated_versions(published)
    for entity in sorted(set(published) | set(stored)):
        want = sorted(set(published.get(entity, [])))
        got = stored.get(entity, [])
        versions = [v for v, _ in want]
        if versions != list(range(1, len(versions) + 1)):
            problems.append(f"{entity}: published versions {versions} are not 1..n")
        if got != want:
            problems.append(f"{entity}: stored {got}, published {want}")
    return problems
