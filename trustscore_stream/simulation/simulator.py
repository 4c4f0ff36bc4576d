"""The simulation: ordinary market activity and scenario steps merged in simulated time.

A run of N events spans about N / rate seconds of simulated time. Its scenarios are planned
first; their steps make exactly one event each, so the ordinary activity gets the rest of
the budget and the run has exactly N events, in time order. An unbounded run (the demo) is
a sequence of chapters, each planned like a run of `chapter` events on the same market.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from trustscore_stream.simulation.clock import DEFAULT_START, parse_time
from trustscore_stream.simulation.envelopes import Envelope, EnvelopeFactory
from trustscore_stream.simulation.labels import Label, labels_document
from trustscore_stream.simulation.market import Market, MarketShape, draw_kind
from trustscore_stream.simulation.scenarios import (
    MAX_SCENARIO_SHARE,
    Planner,
    Scenario,
    default_counts,
)

# Simulated events per second when no rate is given: 100,000 events span about 23 days,
# long enough for holding times, hourly floor samples and decaying sentiment to matter.
DEFAULT_RATE = 0.05
DEFAULT_EVENTS = 100_000
# An unbounded run plans its scenarios in chapters of this many events.
CHAPTER_EVENTS = 20_000


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    seed: int = 7
    events: int | None = DEFAULT_EVENTS  # None: unbounded (chapter after chapter)
    rate: float = DEFAULT_RATE  # events per simulated second
    start: int = field(default_factory=lambda: parse_time(DEFAULT_START))  # epoch ms
    shape: MarketShape = field(default_factory=MarketShape)
    scenarios: Mapping[str, int] | None = None  # kind → count; None: defaults for the size
    chapter: int = CHAPTER_EVENTS

    def __post_init__(self) -> None:
        if self.events is not None and self.events < 1:
            raise ValueError("the number of events must be at least 1")
        if not self.rate > 0:
            raise ValueError("the rate must be positive")
        if self.chapter < 1:
            raise ValueError("the chapter size must be at least 1")


# A heap entry: (time, sequence, required, scenario step or ready envelope).
_Entry = tuple[int, int, bool, Any]


class Simulation:
    """Iterate `events()` once; `labels` fill in as the scenarios play."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.make = EnvelopeFactory(config.seed, self.rng)
        self.market = Market(config.shape, self.rng, self.make, config.start)
        self.planner = Planner(self.market)
        self.labels: list[Label] = []
        self.clock = config.start
        self.emitted = 0
        self._heap: list[_Entry] = []
        self._seq = 0
        # The first chapter is planned now, so a scenario set that does not fit fails here.
        self._first = self._plan(self._chapter_size())

    def _chapter_size(self) -> int:
        return self.config.events if self.config.events is not None else self.config.chapter

    def _plan(self, n: int) -> tuple[int, int, list[Scenario]]:
        begin = self.clock
        end = begin + int(n / self.config.rate * 1000)
        counts = self.config.scenarios
        if counts is None:
            counts = default_counts(n)
        scenarios = self.planner.plan(counts, begin, end, n)
        required = sum(len(s.steps) for s in scenarios)
        if required > n * MAX_SCENARIO_SHARE:
            raise ValueError(
                f"the scenarios need {required} events, more than "
                f"{MAX_SCENARIO_SHARE:.0%} of {n}: ask for more events or fewer scenarios"
            )
        return begin, end, scenarios

    def events(self) -> Iterator[Envelope]:
        plan = self._first
        while True:
            yield from self._chapter(self._chapter_size(), *plan)
            if self.config.events is not None:
                return
            plan = self._plan(self._chapter_size())

    def _push(self, t: int, required: bool, item: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, required, item))

    def _chapter(
        self, n: int, begin: int, end: int, scenarios: list[Scenario]
    ) -> Iterator[Envelope]:
        rng, market, heap = self.rng, self.market, self._heap
        required = 0
        for scenario in scenarios:
            self.labels.append(scenario.label)
            for t, step in scenario.steps:
                self._push(t, True, step)
                required += 1
        ordinary = max(1, n - required)
        # Mean gap between ordinary actions (some actions add a follow-up event).
        gap = (end - begin) * market.expected_events_per_action() / ordinary
        next_t = begin + rng.expovariate(1.0 / gap)
        emitted = 0
        while emitted < n:
            room = n - emitted - required
            if room > 0 and (not heap or next_t < heap[0][0]):
                t = int(next_t)
                produced = market.action(draw_kind(rng), t)
                for later, follow_up in produced[1:]:
                    self._push(later, False, follow_up)
                next_t += rng.expovariate(1.0 / gap)
                envelope = produced[0][1]
            else:
                t, _, is_step, item = heapq.heappop(heap)
                if is_step:
                    required -= 1
                    envelope = item(t)
                elif room > 0:
                    envelope = item
                else:
                    continue  # an optional follow-up that no longer fits the budget
            self.clock = max(self.clock, t)
            emitted += 1
            self.emitted += 1
            yield envelope
        if self.config.events is not None:
            heap.clear()

    def busiest_collections(self, count: int) -> list[str]:
        """Ids of the collections with the most ordinary activity."""
        return [c.entity for c in self.market.busiest(count)]

    def labels_document(self) -> dict[str, object]:
        shape = self.config.shape
        return labels_document(
            seed=self.config.seed,
            events=self.emitted,
            start=self.config.start,
            end=self.clock,
            rate=self.config.rate,
            shape={"collections": shape.collections, "nfts": shape.nfts, "wallets": shape.wallets},
            labels=self.labels,
        )
