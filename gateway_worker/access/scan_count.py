"""How much one SCAN-family call may ask Redis to walk: ``COUNT`` at most
``MAX_SCAN_COUNT`` (a rule of ``access.policy``, for every policy but ``all``).

``COUNT`` is how many buckets Redis visits in that one call, and Redis serves nobody
else meanwhile: ``SCAN 0 COUNT 100000000`` on a large keyspace blocks it for seconds,
as ``KEYS`` does (which the policies refuse for that reason). Options are read as Redis
reads them (``redis.command_syntax``: every occurrence counts, ``SCAN 0 COUNT 10 COUNT
100000000`` uses the last); when they do not parse (an option this gateway does not
know), every value that follows a ``COUNT`` token is judged instead.
"""

from __future__ import annotations

from gateway_worker.redis.command_syntax import grammar, parse_options, redis_int

#: The largest COUNT a SCAN, HSCAN, SSCAN or ZSCAN may carry (Redis's default is 10).
MAX_SCAN_COUNT = 10_000

_GRAMMARS = {
    "SCAN": grammar(2, "MATCH:1 COUNT:1 TYPE:1"),
    "HSCAN": grammar(3, "MATCH:1 COUNT:1 NOVALUES"),
    "SSCAN": grammar(3, "MATCH:1 COUNT:1"),
    "ZSCAN": grammar(3, "MATCH:1 COUNT:1 NOSCORES"),
}


#: The commands ``scan_count_refusal`` judges.
SCAN_COMMANDS = frozenset(_GRAMMARS)


def scan_count_refusal(name: str, args: list[bytes]) -> str | None:
    """Why ``args`` (a ``name`` command) asks for too much in one call, or None."""
    scan = _GRAMMARS.get(name)
    if scan is None:
        return None
    parsed = parse_options(name, args, scan)
    if isinstance(parsed, str):
        counts = [i + 1 for i in range(scan.start, len(args) - 1) if args[i].upper() == b"COUNT"]
    else:
        counts = parsed.values(b"COUNT")
    for i in counts:
        count = redis_int(args[i])
        if count is not None and count > MAX_SCAN_COUNT:
            return (
                f"{name} COUNT {count} is above the gateway's limit of {MAX_SCAN_COUNT}: "
                "one call that large blocks Redis for everyone (iterate with a smaller COUNT)"
            )
    return None
