"""JSONPath-like field paths for provider payloads (pure).

Grammar: `$` then any of `.name`, `['name']` / `["name"]`, `[n]` (negative counts from
the end) and `[*]` (every element of a list, or every value of an object). That subset is
what provider mappings need, so a small exact parser replaces a general JSONPath library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

WILDCARD = "*"

_SEGMENT = re.compile(
    r"""\.(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)
      | \[(?P<index>-?\d+)\]
      | \[(?P<star>\*)\]
      | \[(?P<q>['"])(?P<quoted>(?:(?!(?P=q)).)*)(?P=q)\]
      | \.(?P<dotstar>\*)""",
    re.VERBOSE,
)


class PathError(ValueError):
    """A field path that cannot be parsed."""


Step = str | int


@dataclass(frozen=True, slots=True)
class FieldPath:
    text: str
    steps: tuple[Step, ...]

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        if not text.startswith("$"):
            raise PathError(f"field path {text!r} must start with '$'")
        steps: list[Step] = []
        position = 1
        while position < len(text):
            match = _SEGMENT.match(text, position)
            if match is None:
                raise PathError(f"field path {text!r}: cannot parse at {text[position:]!r}")
            if match["name"] is not None:
                steps.append(match["name"])
            elif match["index"] is not None:
                steps.append(int(match["index"]))
            elif match["quoted"] is not None:
                steps.append(match["quoted"])
            else:
                steps.append(WILDCARD)
            position = match.end()
        return cls(text, tuple(steps))

    def find(self, document: Any) -> list[Any]:
        """Every value the path selects (empty when nothing matches)."""
        current = [document]
        for step in self.steps:
            following: list[Any] = []
            for value in current:
                following.extend(_apply(step, value))
            current = following
        return current


def _apply(step: Step, value: Any) -> list[Any]:
    if step == WILDCARD:
        if isinstance(value, list):
            return list(value)
        if isinstance(value, dict):
            return list(value.values())
        return []
    if isinstance(step, int):
        if isinstance(value, list) and -len(value) <= step < len(value):
            return [value[step]]
        return []
    if isinstance(value, dict) and step in value:
        return [value[step]]
    return []
