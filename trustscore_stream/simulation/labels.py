"""Ground truth: what each injected scenario is, whom it concerns, and what a user should
be told about it. Written as JSON next to the events (docs/simulator.md, "Labels")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trustscore_stream.simulation.clock import format_time


@dataclass(frozen=True, slots=True)
class Role:
    entity: str  # a CONTRACT §1 id
    role: str  # what the entity is in the scenario, e.g. "ring wallet"


@dataclass(frozen=True, slots=True)
class Significant:
    event_id: str
    at: int  # epoch ms
    entity: str  # the entity a user following it should hear about it on
    what: str  # what the user should learn


@dataclass(slots=True)
class Label:
    id: str  # e.g. "wash_trading-2"
    kind: str
    summary: str
    start: int  # epoch ms of its first event
    end: int  # epoch ms of its last event
    details: dict[str, Any] = field(default_factory=dict)
    entities: list[Role] = field(default_factory=list)
    significant: list[Significant] = field(default_factory=list)
    events: int = 0  # how many events it injected

    def add(self, entity: str, role: str) -> None:
        if all(r.entity != entity or r.role != role for r in self.entities):
            self.entities.append(Role(entity, role))

    def tell(self, event_id: str, at: int, entity: str, what: str) -> None:
        self.significant.append(Significant(event_id, at, entity, what))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "summary": self.summary,
            "start": format_time(self.start),
            "end": format_time(self.end),
            "details": self.details,
            "entities": [{"id": r.entity, "role": r.role} for r in self.entities],
            "significant_events": [
                {
                    "event_id": s.event_id,
                    "at": format_time(s.at),
                    "entity": s.entity,
                    "what": s.what,
                }
                for s in self.significant
            ],
            "events": self.events,
        }


def labels_document(
    *,
    seed: int,
    events: int,
    start: int,
    end: int,
    rate: float,
    shape: dict[str, int],
    labels: list[Label],
) -> dict[str, Any]:
    """The whole labels file."""
    return {
        "format": "trustscore-simulation-labels/1",
        "seed": seed,
        "events": events,
        "rate": rate,
        "start": format_time(start),
        "end": format_time(end),
        "market": shape,
        "scenarios": [label.to_json() for label in labels],
    }
