"""What a source contributes: a `Layer` of leaf values, each with its `Origin`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from supervisor.config.errors import Problem
from supervisor.config.formats import Data

KeyPath = tuple[str, ...]


@dataclass(frozen=True)
class Origin:
    """Where a value came from; `secret` values are never shown.

    `locate`, for documents, gives a more precise source for a path below this
    leaf (the line of the second `[[auth.api_keys]]` entry rather than the first).
    """

    source: str
    secret: bool = False
    locate: Callable[[Sequence[str | int]], str] | None = field(
        default=None, compare=False, repr=False
    )

    def source_for(self, path: Sequence[str | int]) -> str:
        """The source, as precise as known for `path`."""
        return self.locate(path) if self.locate is not None else self.source


@dataclass
class Layer:
    """What one source contributed."""

    name: str
    values: dict[KeyPath, tuple[Data, Origin]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    watched: list[Path] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    #: An input was caught mid-write (its size or mtime moved while being read).
    unsettled: bool = False

    def problem(self, key: str, source: str, rule: str) -> None:
        self.problems.append(Problem(key=key, source=source, rule=rule))


def flatten(data: Mapping[Data, Data], prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, Data]]:
    """Leaves of a nested mapping; lists and empty tables are leaves."""
    for key, value in data.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            yield from flatten(value, path)
        else:
            yield path, value
