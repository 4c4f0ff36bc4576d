"""Bounded `eth_getLogs` ranges (pure): the next range to read and how to split one that a
provider refuses as too large."""

from __future__ import annotations

import re
from dataclasses import dataclass

# What providers answer when a range or its result is too large. The wording differs per
# client and provider; these cover geth, Erigon, Nethermind, Alchemy, Infura and QuickNode.
_TOO_LARGE = re.compile(
    r"(range|block range).*(too (large|big|wide)|exceed|limit)"
    r"|more than \d+ (results|logs|blocks)"
    r"|too many (results|logs|blocks)"
    r"|response size (exceeded|should not)"
    r"|limit exceeded"
    r"|exceed(s|ed)? (the )?max(imum)? (block )?range",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class BlockRange:
    first: int
    last: int  # inclusive

    def __post_init__(self) -> None:
        if self.first < 0 or self.last < self.first:
            raise ValueError(f"invalid block range {self.first}..{self.last}")

    @property
    def size(self) -> int:
        return self.last - self.first + 1


def next_range(next_block: int, target: int, span: int) -> BlockRange | None:
    """The next range to read: from `next_block`, at most `span` blocks, never past `target`."""
    if next_block > target:
        return None
    return BlockRange(next_block, min(target, next_block + max(1, span) - 1))


def split(block_range: BlockRange) -> tuple[BlockRange, BlockRange | None]:
    """Halves of a refused range; a single block cannot be split (the second part is None)."""
    if block_range.size == 1:
        return block_range, None
    middle = block_range.first + block_range.size // 2 - 1
    return BlockRange(block_range.first, middle), BlockRange(middle + 1, block_range.last)


def is_range_too_large(message: str) -> bool:
    """Whether a provider's error message says the range (or its result) is too large."""
    return bool(_TOO_LARGE.search(message))
