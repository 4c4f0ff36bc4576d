"""A seeded, reproducible NFT market with injected scenarios and ground-truth labels.

Pure: no I/O and no wall clock. `Simulation(SimulationConfig(...)).events()` yields CONTRACT
§2 envelopes (dicts) in simulated time; `labels_document()` describes the injected scenarios.
The `trustscore-stream simulate` command (trustscore_stream/simulate.py) writes them to a
file or a broker. docs/simulator.md describes the market model and every scenario.
"""

from trustscore_stream.simulation.market import MarketShape
from trustscore_stream.simulation.scenarios import SCENARIO_KINDS, default_counts, parse_scenarios
from trustscore_stream.simulation.simulator import (
    DEFAULT_EVENTS,
    DEFAULT_RATE,
    Simulation,
    SimulationConfig,
)

__all__ = [
    "DEFAULT_EVENTS",
    "DEFAULT_RATE",
    "SCENARIO_KINDS",
    "MarketShape",
    "Simulation",
    "SimulationConfig",
    "default_counts",
    "parse_scenarios",
]
