"""Command options read the way Redis reads them, so a check judges what Redis will do.

Redis walks a command's options left to right: each token is a known option
(case-insensitive) followed by a fixed number of values, anything else is a syntax
error, and a repeated option usually overrides the earlier one (``SCAN 0 MATCH a:*
MATCH *`` matches ``*``). Looking for the *first* ``MATCH`` token, or for a keyword
anywhere in the arguments, misjudges such commands; ``parse_options`` follows Redis's
own loops instead (``scanGenericCommand``, ``sortCommandGeneric``, ``georadiusGeneric``,
``copyCommand``, ``xreadCommand``) and returns *every* occurrence, so a caller can check
all of them (the one Redis uses is among them).

``redis_int`` parses an integer as Redis's ``string2ll`` does (no sign but ``-``, no
spaces, no leading zeros): Python's ``int()`` accepts ``" 2"``, ``"+2"`` and ``"1_0"``,
which Redis refuses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_REDIS_INT = re.compile(rb"0|-?[1-9][0-9]{0,18}")


def redis_int(raw: bytes) -> int | None:
    """``raw`` as Redis reads an integer argument, or None when Redis would refuse it."""
    if not _REDIS_INT.fullmatch(raw):
        return None
    value = int(raw)
    return value if -(2**63) <= value < 2**63 else None


@dataclass(frozen=True)
class Grammar:
    """The options of one command: where they start and how many values each takes.

    ``terminal``: an option after which every remaining argument belongs to it
    (``STREAMS`` of ``XREAD``); it needs at least one argument after it.
    """

    start: int
    arity: Mapping[bytes, int]
    terminal: bytes | None = None


@dataclass
class Parsed:
    """Where each option occurred (index of the option token), in order."""

    at: dict[bytes, list[int]] = field(default_factory=dict)
    terminal_at: int | None = None

    def values(self, option: bytes) -> list[int]:
        """Index of the (first) value of every occurrence of ``option``."""
        return [i + 1 for i in self.at.get(option, [])]


def parse_options(name: str, args: list[bytes], grammar: Grammar) -> Parsed | str:
    """The options of ``args`` as Redis reads them, or why Redis would refuse them."""
    parsed = Parsed()
    i = grammar.start
    while i < len(args):
        token = args[i].upper()
        if token == grammar.terminal and i + 1 < len(args):
            parsed.terminal_at = i
            return parsed
        count = grammar.arity.get(token)
        if count is None:
            return f"{name}: argument {i} is not an option {name} knows"
        if i + count >= len(args):
            return f"{name}: option at argument {i} lacks its value"
        parsed.at.setdefault(token, []).append(i)
        i += 1 + count
    if grammar.terminal is not None:
        return f"{name} needs {grammar.terminal.decode()} followed by its arguments"
    return parsed


def grammar(start: int, options: str, terminal: str | None = None) -> Grammar:
    """A ``Grammar`` from ``"NAME:arity NAME:arity ..."`` (arity 0 for a flag)."""
    arity: dict[bytes, int] = {}
    for item in options.split():
        option, _, count = item.partition(":")
        arity[option.encode()] = int(count or 0)
    return Grammar(start, arity, terminal.encode() if terminal else None)
