"""How the replies of a command split over slots, or fanned out to every primary, are
put back together, and the SCAN cursor that names the shard it is in.

Every merge gets the parts' replies in the order the parts were made, with the node
each ran on; an error reply from any part is the answer (it names the node, and says
the command ran on the others when it was a fan-out: FLUSHALL is not atomic across
primaries).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gateway_worker.redis.cluster.slot_map import Address, shown
from gateway_worker.redis.values import ReplyError, RespValue, Status

#: (node, reply) of every part, in part order -> the reply of the command.
Merge = Callable[[Sequence[tuple[Address, RespValue]]], RespValue]

#: The last four decimal digits of a gateway SCAN cursor name the shard.
SCAN_SHARDS = 10_000


def _first_error(
    name: str, parts: Sequence[tuple[Address, RespValue]], fan_out: bool
) -> ReplyError | None:
    for address, reply in parts:
        if isinstance(reply, ReplyError):
            if not fan_out or len(parts) == 1:
                return reply
            others = ", ".join(shown(a) for a, r in parts if not isinstance(r, ReplyError))
            ran = f"; it ran on {others}" if others else ""
            return ReplyError(f"{reply} (from {shown(address)}: {name} on every primary{ran})")
    return None


def summed(name: str, fan_out: bool = False) -> Merge:
    """DEL, UNLINK, EXISTS, TOUCH split by slot; DBSIZE over every primary."""

    def merge(parts: Sequence[tuple[Address, RespValue]]) -> RespValue:
        error = _first_error(name, parts, fan_out)
        if error is not None:
            return error
        return sum(r for _, r in parts if isinstance(r, int))

    return merge


def agreed(name: str, fan_out: bool = True) -> Merge:
    """MSET split by slot; FLUSHALL, SCRIPT LOAD, FUNCTION LOAD... on every primary:
    the first reply when none failed (they are the same: OK, a SHA, a library name)."""

    def merge(parts: Sequence[tuple[Address, RespValue]]) -> RespValue:
        error = _first_error(name, parts, fan_out)
        if error is not None:
            return error
        return parts[0][1] if parts else Status(b"OK")

    return merge


def concatenated(name: str) -> Merge:
    """KEYS on every primary: every node's keys, primaries in shard order."""

    def merge(parts: Sequence[tuple[Address, RespValue]]) -> RespValue:
        error = _first_error(name, parts, True)
        if error is not None:
            return error
        return [item for _, r in parts if isinstance(r, list) for item in r]

    return merge


def all_true(name: str) -> Merge:
    """SCRIPT EXISTS on every primary: 1 for a script only when every primary has it."""

    def merge(parts: Sequence[tuple[Address, RespValue]]) -> RespValue:
        error = _first_error(name, parts, True)
        if error is not None:
            return error
        lists = [r for _, r in parts if isinstance(r, list)]
        return [min(column) for column in zip(*lists, strict=True)] if lists else []

    return merge


def placed(name: str, positions: list[list[int]], total: int) -> Merge:
    """MGET split by slot: part ``i`` answered the keys at ``positions[i]``."""

    def merge(parts: Sequence[tuple[Address, RespValue]]) -> RespValue:
        error = _first_error(name, parts, False)
        if error is not None:
            return error
        values: list[RespValue] = [None] * total
        for (_, reply), where in zip(parts, positions, strict=True):
            if not isinstance(reply, list) or len(reply) != len(where):
                return ReplyError(f"ERR unexpected reply to a part of {name}: {reply!r}")
            for position, value in zip(where, reply, strict=True):
                values[position] = value
        return values

    return merge


def scan_cursor(raw: bytes) -> tuple[int, int] | None:
    """(shard rank, that node's cursor) of a gateway SCAN cursor; None if malformed."""
    if not raw.isdigit() or (len(raw) > 1 and raw[0] == 0x30):
        return None
    value = int(raw)
    return value % SCAN_SHARDS, value // SCAN_SHARDS


def scanned(shard: int, shards: int) -> Merge:
    """SCAN on one shard: its keys, and the cursor of what comes next (the same shard
    further on, the next shard from its start, or 0 after the last)."""

    def merge(parts: Sequence[tuple[Address, RespValue]]) -> RespValue:
        ((_, reply),) = parts
        if not isinstance(reply, list) or len(reply) != 2 or not isinstance(reply[0], bytes):
            return reply
        node_next = int(reply[0]) if reply[0].isdigit() else 0
        if node_next:
            cursor = node_next * SCAN_SHARDS + shard
        else:
            cursor = shard + 1 if shard + 1 < shards else 0
        return [str(cursor).encode(), reply[1]]

    return merge
