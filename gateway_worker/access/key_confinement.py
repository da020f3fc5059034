"""Key-prefix confinement: a credential with ``key_prefix`` reaches only keys under it.

``check_key_prefix(name, args, prefix, home_db)`` returns None when everything the
command reaches stays under ``prefix`` in database ``home_db``, else the reason. Where
a command's keys are is ``gateway_worker.redis.keys`` (one table, shared with cluster
routing); this module adds what confinement makes of it:

* commands absent from ``KEY_SPECS`` are refused: a command whose keys we cannot
  locate could reach any key;
* ``REFUSED`` commands are refused whatever their arguments, with the reason: scripts
  (they reach keys they do not declare) and commands that reach another database or
  server (SELECT, MOVE, SWAPDB, MIGRATE);
* every key position must start with the prefix; every glob (``SCAN MATCH``, ``KEYS``,
  ``PSUBSCRIBE``) with the glob-escaped prefix, and a SCAN needs a ``MATCH`` (without
  one it lists every key); every ``SORT BY``/``GET`` pattern must read keys under the
  prefix; every ``COPY ... DB n`` must name ``home_db``.

A repeated option is checked in *every* occurrence, so the one Redis uses (usually the
last) is always judged. Pub/sub channels are treated as keys: a confined credential
publishes and subscribes only under its prefix.
"""

from __future__ import annotations

import re

from gateway_worker.redis.command_syntax import redis_int
from gateway_worker.redis.keys import KEY_SPECS, Located, locate_keys

_SCRIPTS = "scripts can reach keys they do not declare"
_OTHER_DB = "it reaches another database"
REFUSED: dict[str, str] = {
    **dict.fromkeys(
        ["EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO", "FUNCTION", "SCRIPT"],
        _SCRIPTS,
    ),
    **dict.fromkeys(["SELECT", "MOVE", "SWAPDB"], _OTHER_DB),
    "MIGRATE": "it sends keys to another server or database",
}

_GLOB_SPECIALS = re.compile(rb"([*?\[\]\\])")


def glob_escape(prefix: bytes) -> bytes:
    """``prefix`` with Redis glob metacharacters escaped, for pattern comparisons."""
    return _GLOB_SPECIALS.sub(rb"\\\1", prefix)


def _located(name: str, args: list[bytes]) -> Located | str:
    if name in REFUSED:
        return f"{name} is refused for a credential confined to a key prefix: {REFUSED[name]}"
    if name not in KEY_SPECS:
        return f"command {name} is not supported for credentials confined to a key prefix"
    found = locate_keys(name, args)
    if name == "SCAN" and isinstance(found, Located) and not found.globs:
        return "SCAN needs MATCH <key prefix>* for a credential confined to a key prefix"
    return found


def check_key_prefix(name: str, args: list[bytes], prefix: bytes, home_db: int = 0) -> str | None:
    """None when everything ``args`` reaches stays under ``prefix`` in ``home_db``.

    The reason names the argument position, never the key itself (reasons may be logged).
    """
    found = _located(name, args)
    if isinstance(found, str):
        return found
    shown = prefix.decode("utf-8", "replace")
    for i in found.keys:
        # A key position past the end is a command Redis refuses (wrong arity).
        if i < len(args) and not args[i].startswith(prefix):
            return f"{name}: key argument {i} is outside the key prefix {shown!r}"
    escaped = glob_escape(prefix)
    for i in found.globs:
        if not args[i].startswith(escaped):
            return f"{name}: pattern argument {i} must start with the key prefix {shown!r}"
    for i in found.sort_patterns:
        if _sort_pattern_escapes(args[i], prefix):
            return (
                f"{name}: pattern argument {i} reads keys outside the key prefix {shown!r} "
                f"(the part before its first '*' must start with the prefix)"
            )
    for i in found.databases:
        if redis_int(args[i]) != home_db:
            return (
                f"{name}: database argument {i} is not the gateway's database {home_db}; "
                f"a credential confined to a key prefix may not reach another database"
            )
    return None


def _sort_pattern_escapes(pattern: bytes, prefix: bytes) -> bool:
    """True when a SORT BY/GET pattern could read a key outside ``prefix``.

    Redis substitutes the element for the pattern's first ``*`` and reads the key made
    of what comes before it, the element and the rest (up to ``->``): that key starts
    with the part before the first ``*``, which must hold the whole prefix (a prefix
    with a ``*`` in it cannot be confined). ``#`` is the element itself, and a pattern
    without ``*`` reads no key (``BY nosort``).
    """
    star = pattern.find(b"*")
    if pattern == b"#" or star < 0:
        return False
    return star < len(prefix) or not pattern.startswith(prefix)
