"""Where a command goes in a cluster: ``route(name, args, slot_map)``.

* a slot (``int``): every key the command names hashes to it (``keys.locate_keys``,
  the table key confinement reads too); ``ANY`` when it names none: a keyless read
  (PING, TIME, ...), a script with no key, or a command the table does not know
  (a module's): it goes to a primary, and a ``MOVED`` reply is followed like any other,
  so a keyed command we cannot parse still lands where Redis says;
* a ``Job``: parts sent to several slots or nodes, and how their replies merge
  (``merge``): MGET/MSET/DEL/UNLINK/EXISTS/TOUCH across slots are split per slot,
  DBSIZE/KEYS/FLUSHDB/FLUSHALL and SCRIPT LOAD|FLUSH|EXISTS, FUNCTION LOAD|DELETE|FLUSH
  go to every primary, SCAN to the shard its cursor names;
* a ``ReplyError``: refused, saying why: other multi-key commands across slots
  (``CROSSSLOT``, with the hash tag to use), and commands that act on one node or one
  connection (INFO, CONFIG, WAIT, PUBSUB, ...), where any node the gateway picked
  would be a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway_worker.redis.cluster import merge
from gateway_worker.redis.cluster.slot_map import Address, SlotMap
from gateway_worker.redis.cluster.slots import SLOTS, key_slot
from gateway_worker.redis.command_syntax import redis_int
from gateway_worker.redis.keys import KEY_SPECS, Located, locate_keys
from gateway_worker.redis.values import ReplyError

#: Any primary will do.
ANY = -1
#: Where one part goes: a slot, ``ANY``, or one node (fan-outs).
Target = int | Address


@dataclass(frozen=True, slots=True)
class Part:
    target: Target
    args: list[bytes]


@dataclass(frozen=True, slots=True)
class Job:
    """A command run as several parts, and how their replies make its reply."""

    parts: list[Part]
    merge: merge.Merge


Route = int | Job | ReplyError

_ANY_NODE = frozenset({b"PING", b"ECHO", b"TIME", b"COMMAND", b"LOLWUT", b"RANDOMKEY"})

_ONE_NODE = (
    "it acts on one node, and any node the gateway picked would be a guess: run it "
    "against the nodes themselves"
)
_REFUSED: dict[bytes, str] = {
    **dict.fromkeys(
        [b"CONFIG", b"SAVE", b"BGSAVE", b"BGREWRITEAOF", b"LASTSAVE", b"SLOWLOG", b"LATENCY"],
        _ONE_NODE,
    ),
    **dict.fromkeys(
        [b"DEBUG", b"SHUTDOWN", b"REPLICAOF", b"SLAVEOF", b"FAILOVER", b"ACL", b"MODULE"],
        _ONE_NODE,
    ),
    b"INFO": "its answer describes one node; ask the nodes themselves",
    b"PUBSUB": "its answer describes the subscribers of one node",
    b"WAIT": "it waits for the replication of one connection's writes, and the gateway's "
    "connections are shared",
    b"WAITAOF": "it waits for the fsync of one connection's writes, and the gateway's "
    "connections are shared",
    b"MOVE": "Redis Cluster has only database 0",
    b"SWAPDB": "Redis Cluster has only database 0",
    b"MIGRATE": "moving keys between nodes is the cluster operator's business "
    "(valkey-cli --cluster reshard)",
    b"READONLY": "the gateway manages its cluster connections itself",
    b"READWRITE": "the gateway manages its cluster connections itself",
    b"ASKING": "the gateway follows ASK redirects itself",
}


# Checked first on the hot path: the commands whose key is args[1] (refused ones aside).
_FIRST_KEY = frozenset(
    n.encode() for n, kind in KEY_SPECS.items() if kind == "first" and n.encode() not in _REFUSED
)


def refused(name: bytes, reason: str) -> ReplyError:
    shown = name.decode("ascii", "replace")
    return ReplyError(f"ERR {shown} is not available through the gateway in cluster mode: {reason}")


def cross_slot(name: bytes, slots: int) -> ReplyError:
    """``CROSSSLOT`` for a command whose keys are in ``slots`` slots, with the fix."""
    return ReplyError(
        f"CROSSSLOT Keys in request don't hash to the same slot: the keys of "
        f"{name.decode('ascii', 'replace')} are in {slots} slots, and in a cluster a "
        f"command's keys must share one: {HASH_TAG_HINT}"
    )


HASH_TAG_HINT = "give them a common hash tag, e.g. {user:1}:a and {user:1}:b"


def everywhere(name: bytes, args: Sequence[bytes], slot_map: SlotMap, how: merge.Merge) -> Job:
    return Job([Part(p, list(args)) for p in slot_map.primaries()], how)


def _split(name: bytes, args: Sequence[bytes], keys: list[int]) -> Job | None:
    """MGET, MSET, DEL, UNLINK, EXISTS, TOUCH across slots, one part per slot."""
    text = name.decode()
    groups: dict[int, list[int]] = {}
    for i in keys:
        groups.setdefault(key_slot(args[i]), []).append(i)
    if name == b"MSET":
        parts = [
            Part(slot, [name, *(a for i in where for a in (args[i], args[i + 1]))])
            for slot, where in groups.items()
        ]
        return Job(parts, merge.agreed(text, fan_out=False))
    parts = [Part(slot, [name, *(args[i] for i in where)]) for slot, where in groups.items()]
    if name == b"MGET":
        positions = [[i - 1 for i in where] for where in groups.values()]
        return Job(parts, merge.placed(text, positions, len(args) - 1))
    if name in (b"DEL", b"UNLINK", b"EXISTS", b"TOUCH"):
        return Job(parts, merge.summed(text))
    return None


def _scan(args: Sequence[bytes], slot_map: SlotMap) -> Route:
    cursor = merge.scan_cursor(args[1]) if len(args) > 1 else None
    shards = len(slot_map.shards)
    if cursor is None or cursor[0] >= max(shards, 1):
        return ReplyError(
            "ERR invalid cursor (in cluster mode the gateway's SCAN cursors name the shard "
            "they are in: start from 0, and pass back the cursor each reply gave)"
        )
    shard, node_cursor = cursor
    part = Part(slot_map.shards[shard].primary, [args[0], str(node_cursor).encode(), *args[2:]])
    return Job([part], merge.scanned(shard, shards))


#: Subcommands routed in cluster mode, by command (the others are refused).
_ROUTED_SUBCOMMANDS: dict[bytes, tuple[bytes, ...]] = {
    b"SCRIPT": (b"LOAD", b"FLUSH", b"EXISTS"),
    b"FUNCTION": (b"LOAD", b"DELETE", b"FLUSH", b"LIST"),
    b"CLUSTER": (
        b"INFO",
        b"SHARDS",
        b"SLOTS",
        b"NODES",
        b"KEYSLOT",
        b"COUNTKEYSINSLOT",
        b"GETKEYSINSLOT",
    ),
    b"MEMORY": (b"USAGE",),
}


def _subcommand(name: bytes, args: Sequence[bytes], slot_map: SlotMap) -> Route | None:
    sub = args[1].upper() if len(args) > 1 else b""
    routed = _ROUTED_SUBCOMMANDS.get(name)
    if routed is None:
        return None
    text = f"{name.decode()} {sub.decode('ascii', 'replace')}".strip()
    if sub not in routed:
        listed = ", ".join(r.decode() for r in routed)
        return refused(name, f"only {listed} are routed; {text}: {_ONE_NODE}")
    if sub == b"EXISTS":
        return everywhere(name, args, slot_map, merge.all_true(text))
    if name in (b"SCRIPT", b"FUNCTION") and sub != b"LIST":
        return everywhere(name, args, slot_map, merge.agreed(text))
    if sub in (b"COUNTKEYSINSLOT", b"GETKEYSINSLOT"):
        slot = redis_int(args[2]) if len(args) > 2 else None
        return slot if slot is not None and 0 <= slot < SLOTS else ANY
    if sub == b"USAGE":
        return key_slot(args[2]) if len(args) > 2 else ANY
    return ANY


def _fan_out(name: bytes, args: Sequence[bytes], slot_map: SlotMap) -> Route | None:
    if name == b"DBSIZE":
        return everywhere(name, args, slot_map, merge.summed("DBSIZE", fan_out=True))
    if name == b"KEYS":
        return everywhere(name, args, slot_map, merge.concatenated("KEYS"))
    if name in (b"FLUSHDB", b"FLUSHALL"):
        return everywhere(name, args, slot_map, merge.agreed(name.decode()))
    if name == b"SCAN":
        return _scan(args, slot_map)
    return _subcommand(name, args, slot_map)


_SPECIAL = frozenset({b"DBSIZE", b"KEYS", b"FLUSHDB", b"FLUSHALL", b"SCAN", *_ROUTED_SUBCOMMANDS})


def route(name: bytes, args: Sequence[bytes], slot_map: SlotMap) -> Route:
    """Where ``args`` goes (see the module docstring); ``name`` is ``args[0].upper()``."""
    if name in _FIRST_KEY:
        return key_slot(args[1]) if len(args) > 1 else ANY
    if name in _ANY_NODE:
        return ANY
    reason = _REFUSED.get(name)
    if reason is not None:
        return refused(name, reason)
    if name in _SPECIAL:
        found = _fan_out(name, args, slot_map)
        if found is not None:
            return found
    located = locate_keys(name.decode("ascii", "replace"), list(args))
    if not isinstance(located, Located):
        return ANY  # unknown or malformed: Redis answers (MOVED, or the syntax error)
    keys = [i for i in located.keys if i < len(args)]
    if not keys:
        return ANY
    first = key_slot(args[keys[0]])
    slots = {first, *(key_slot(args[i]) for i in keys[1:])}
    if len(slots) == 1:
        return first
    return _split(name, args, keys) or cross_slot(name, len(slots))


def slots_of(commands: Sequence[Sequence[bytes]]) -> set[int]:
    """Every slot the keys of ``commands`` hash to (a transaction must have one)."""
    slots: set[int] = set()
    for args in commands:
        if not args:
            continue
        located = locate_keys(args[0].upper().decode("ascii", "replace"), list(args))
        if isinstance(located, Located):
            slots.update(key_slot(args[i]) for i in located.keys if i < len(args))
    return slots
