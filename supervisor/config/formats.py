"""Parse TOML, YAML and JSON config documents, and find the line of a key in them.

The parsers themselves do not keep positions (tomllib, json) so the line of a key
is found again in the text: YAML through its node tree (exact), TOML by tracking
table headers and key lines, JSON by finding the keys of the path in order.
Line lookup is best effort; a problem without a line still names the file.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import yaml

LineOf = Callable[[Sequence[str | int]], int | None]

#: A value as a TOML/YAML/JSON parser (or a text source) returns it: untyped by
#: nature, the edge of tomllib/yaml/json; pydantic validates it. Every raw config value
#: in ``supervisor.config`` has this type.
Data: TypeAlias = Any


class FormatError(Exception):
    """A document that does not parse; `line` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Document:
    """A parsed document: its data and a function giving the line of a key path."""

    data: dict[str, Data]
    line_of: LineOf


def format_of(name: str | PurePath) -> str:
    """'toml', 'yaml' or 'json' from a file name; TOML unless the suffix says otherwise."""
    suffix = PurePath(name).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".json":
        return "json"
    return "toml"


#: Deepest nesting a config document or key may have. The schema itself is at most
#: five levels deep (auth.api_keys.0.key); the bound keeps hostile or broken input
#: (`[[[[...` five hundred levels down) a clear error instead of a RecursionError.
MAX_DEPTH = 32


def parse_document(text: str, fmt: str) -> Document:
    """Parse `text` as `fmt`; raise FormatError (with the line when known)."""
    try:
        if fmt == "yaml":
            doc = _parse_yaml(text)
        elif fmt == "json":
            doc = _parse_json(text)
        else:
            doc = _parse_toml(text)
    except RecursionError:
        # The parsers recurse per nesting level; past Python's limit they give up.
        raise FormatError(f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    deepest = depth(doc.data)
    if deepest > MAX_DEPTH:
        raise FormatError(f"nested {deepest} levels deep (at most {MAX_DEPTH})")
    return doc


def depth(value: Data) -> int:
    """How many levels of tables/lists `value` has (iterative: no recursion limit)."""
    deepest = 0
    stack: list[tuple[Data, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Data = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if level <= MAX_DEPTH:  # past the bound the answer is already "too deep"
            stack.extend((child, level) for child in children)
    return deepest


def _require_mapping(data: Data, what: str) -> dict[str, Data]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FormatError(
            f"the top level of a {what} document must be a table/mapping, "
            f"not {type(data).__name__}",
            1,
        )
    return data


_TOML_LINE = re.compile(r"line (\d+)")


def _parse_toml(text: str) -> Document:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        raise FormatError(f"invalid TOML: {exc}", int(match.group(1)) if match else None) from exc
    return Document(data, _toml_line_finder(text))


_KEY_PART = r'(?:[A-Za-z0-9_-]+|"[^"\n]*"|\'[^\'\n]*\')'
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")


def _split_dotted(key: str) -> tuple[str, ...]:
    parts = re.findall(_KEY_PART, key)
    return tuple(p[1:-1] if p[:1] in ('"', "'") else p for p in parts)


def _toml_line_finder(text: str) -> LineOf:
    # Paths are recorded twice: with the index of each [[array.of.tables]] entry
    # (to point at the right entry) and without indexes (for everything else).
    lines: dict[tuple[str | int, ...], int] = {}
    counts: dict[tuple[str, ...], int] = {}
    table: tuple[str | int, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            names = _split_dotted(header.group(1))
            table = names
            if line.lstrip().startswith("[["):
                counts[names] = counts.get(names, -1) + 1
                table = (*names, counts[names])
            lines.setdefault(table, number)
            lines.setdefault(names, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            key = _split_dotted(assign.group(1))
            lines.setdefault((*table, *key), number)
            lines.setdefault((*(p for p in table if isinstance(p, str)), *key), number)

    def line_of(path: Sequence[str | int]) -> int | None:
        for candidate in (tuple(path), tuple(p for p in path if isinstance(p, str))):
            for end in range(len(candidate), 0, -1):
                if candidate[:end] in lines:
                    return lines[candidate[:end]]
        return None

    return line_of


def _parse_yaml(text: str) -> Document:
    # Imported here: most deployments use TOML, and the long-running supervisor should
    # not carry a YAML parser it never calls (issue 3, RSS target).
    import yaml

    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise FormatError(f"invalid YAML: {problem}", line) from exc
    data = _require_mapping(data, "YAML")
    return Document(data, lambda path: _yaml_line(root, path))


def _yaml_line(node: yaml.Node | None, path: Sequence[str | int]) -> int | None:
    import yaml

    best: int | None = None
    for part in path:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part):
                    best = key_node.start_mark.line + 1
                    child = value_node
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            best = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return best


def _parse_json(text: str) -> Document:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno) from exc
    data = _require_mapping(data, "JSON")

    def line_of(path: Sequence[str | int]) -> int | None:
        pos, found = 0, None
        for part in path:
            if isinstance(part, int):
                continue
            match = re.compile(rf"{re.escape(json.dumps(part))}\s*:").search(text, pos)
            if match is None:
                break
            pos = match.end()
            found = text.count("\n", 0, match.start()) + 1
        return found

    return Document(data, line_of)
