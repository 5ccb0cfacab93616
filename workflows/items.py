"""A request's array of items (an import, a batch) as the view parsed it, so that the use case can add
its own problems and refuse every item's at once, by index."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Problems = dict[str, list[str]]


@dataclass(frozen=True)
class Items:
    """The items that loaded, by index, and the field errors of those that did not."""

    loaded: list[tuple[int, Any]]
    refused: dict[int, Problems]
    count: int


def by_index(problems: Mapping[int, Any]) -> dict[str, Any]:
    """Problems keyed as the API names a list's items: by index, in order."""
    return {str(i): problems[i] for i in sorted(problems)}
