"""Remembered block hashes and reorg detection (pure).

The chain source remembers the hash of recent blocks it has seen (processed ones and the
unconfirmed tip). A block whose parent hash differs from the remembered hash of the block
below it, or a height whose hash changed, means the chain reorganised. Only blocks at most
the tracker's window deep can be compared; a reorg deeper than that cannot be repaired
automatically (`ReorgTooDeep`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


class ReorgTooDeep(RuntimeError):
    """No remembered block is still on the canonical chain: the fork point is unknown."""


@dataclass(frozen=True, slots=True)
class Header:
    number: int
    hash: str
    parent_hash: str
    timestamp: int


@dataclass
class BlockTracker:
    """Hashes of the most recent `window` block heights seen."""

    window: int = 256
    hashes: dict[int, str] = field(default_factory=dict)

    def remember(self, number: int, block_hash: str) -> bool:
        """Record a block's hash; True when it replaces a different hash (a reorg seen)."""
        previous = self.hashes.get(number)
        self.hashes[number] = block_hash
        if len(self.hashes) > self.window:
            for old in sorted(self.hashes)[: len(self.hashes) - self.window]:
                del self.hashes[old]
        return previous is not None and previous != block_hash

    def parent_matches(self, header: Header) -> bool:
        """False when the block below `header` is remembered with another hash."""
        known = self.hashes.get(header.number - 1)
        return known is None or known == header.parent_hash

    def forget_between(self, first: int, last: int) -> None:
        for height in [h for h in self.hashes if first <= h <= last]:
            del self.hashes[height]

    def forget_above(self, number: int) -> None:
        for height in [h for h in self.hashes if h > number]:
            del self.hashes[height]

    def below(self, number: int) -> list[tuple[int, str]]:
        """Remembered (height, hash) pairs under `number`, highest first."""
        return sorted(((h, v) for h, v in self.hashes.items() if h < number), reverse=True)

    def snapshot(self) -> list[tuple[int, str]]:
        return sorted(self.hashes.items())

    @classmethod
    def restore(cls, pairs: list[tuple[int, str]], window: int = 256) -> BlockTracker:
        tracker = cls(window=window)
        for number, block_hash in pairs:
            tracker.remember(number, block_hash)
        return tracker


async def find_fork_point(
    tracker: BlockTracker, below: int, canonical_hash: Callable[[int], Awaitable[str]]
) -> int:
    """The highest remembered height under `below` that is still canonical.

    Walks down the remembered heights asking the provider for each one's current hash;
    raises `ReorgTooDeep` if none matches."""
    for number, remembered in tracker.below(below):
        if await canonical_hash(number) == remembered:
            return number
    raise ReorgTooDeep(f"no remembered block under {below} is on the canonical chain any more")
