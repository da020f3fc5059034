"""``SlotMap``: which primary serves which slot, read from the cluster itself.

Built from ``CLUSTER SHARDS`` (Redis 7+, Valkey) or, on older servers, ``CLUSTER
SLOTS``. Nodes are known by the address they announce (``endpoint``, else ``ip``; an
empty or ``?`` endpoint means "the node you asked"); with TLS on, their ``tls-port``.

Shards are ordered by their first slot: that order is stable across failovers (a
shard keeps its slots when a replica takes over), so a SCAN cursor may name a shard by
its rank (``merge.ScanCursor``).

A slot is *covered* when its shard's primary is online (``health`` in CLUSTER SHARDS;
CLUSTER SLOTS has no health, so every listed slot counts): ``/readyz`` wants all 16384.
``moved(slot, address)`` applies one ``MOVED`` redirect at once, before the full
refresh it triggers comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway_worker.redis.cluster.slots import SLOTS
from gateway_worker.redis.values import RespValue

#: A node: (host, port).
Address = tuple[str, int]


def shown(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Shard:
    """A primary, its replicas, and the slot ranges it serves."""

    primary: Address
    ranges: tuple[tuple[int, int], ...]
    replicas: tuple[Address, ...] = ()
    online: bool = True

    @property
    def first_slot(self) -> int:
        return min(start for start, _ in self.ranges) if self.ranges else SLOTS


@dataclass
class SlotMap:
    """Slot -> shard index; ``shards`` ordered by first slot (module docstring)."""

    shards: list[Shard] = field(default_factory=list)
    owner: list[int] = field(default_factory=lambda: [-1] * SLOTS)

    @classmethod
    def of(cls, shards: list[Shard]) -> SlotMap:
        ordered = sorted((s for s in shards if s.ranges), key=lambda s: s.first_slot)
        owner = [-1] * SLOTS
        for index, shard in enumerate(ordered):
            for start, end in shard.ranges:
                owner[start : end + 1] = [index] * (end - start + 1)
        return cls(ordered, owner)

    def primary_for(self, slot: int) -> Address | None:
        index = self.owner[slot]
        return self.shards[index].primary if index >= 0 else None

    def primaries(self) -> list[Address]:
        return [s.primary for s in self.shards]

    def nodes(self) -> list[Address]:
        """Every node known: primaries first, then replicas."""
        return [*self.primaries(), *(r for s in self.shards for r in s.replicas)]

    def covered(self) -> int:
        online = [s.online for s in self.shards]
        return sum(1 for index in self.owner if index >= 0 and online[index])

    def gaps(self) -> str:
        """The slot ranges without an online primary, e.g. ``0-5460``."""
        online = [s.online for s in self.shards]
        missing = [i for i, index in enumerate(self.owner) if index < 0 or not online[index]]
        ranges: list[str] = []
        start = prev = None
        for slot in [*missing, None]:
            if slot is not None and prev is not None and slot == prev + 1:
                prev = slot
                continue
            if start is not None:
                ranges.append(f"{start}-{prev}" if prev != start else str(start))
            start = prev = slot
        return ", ".join(ranges[:5]) + (" ..." if len(ranges) > 5 else "")

    def moved(self, slot: int, address: Address) -> None:
        """``MOVED slot address``: that primary serves ``slot`` now."""
        for index, shard in enumerate(self.shards):
            if shard.primary == address:
                self.owner[slot] = index
                return
        self.shards.append(Shard(address, ((slot, slot),)))
        self.owner[slot] = len(self.shards) - 1


class SlotMapError(Exception):
    """A reply that is not a slot map (an error, or something else)."""


def _text(value: RespValue) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _fields(flat: RespValue) -> dict[str, RespValue]:
    items = flat if isinstance(flat, list) else []
    return {_text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def _address(node: dict[str, RespValue], asked: Address, tls: bool) -> Address | None:
    host = _text(node.get("endpoint", b""))
    if host in ("", "?", "None"):
        host = _text(node.get("ip", b"")) or asked[0]
    if host == "?":
        host = asked[0]
    port = node.get("tls-port") if tls else None
    if not isinstance(port, int) or port <= 0:
        port = node.get("port")
    return (host, port) if isinstance(port, int) and port > 0 else None


def parse_shards(reply: RespValue, asked: Address, tls: bool = False) -> SlotMap:
    """A ``CLUSTER SHARDS`` reply as a map; ``SlotMapError`` when it is not one."""
    if not isinstance(reply, list):
        raise SlotMapError(f"CLUSTER SHARDS answered {_text(reply)!r}")
    shards = []
    for item in reply:
        fields = _fields(item)
        flat = fields.get("slots")
        bounds = [v for v in flat if isinstance(v, int)] if isinstance(flat, list) else []
        ranges = tuple(zip(bounds[::2], bounds[1::2], strict=True))
        nodes = fields.get("nodes")
        primary: Address | None = None
        online = False
        replicas = []
        for raw in nodes if isinstance(nodes, list) else []:
            node = _fields(raw)
            address = _address(node, asked, tls)
            if address is None:
                continue
            if _text(node.get("role", b"")) == "master":
                primary, online = address, _text(node.get("health", b"")) == "online"
            else:
                replicas.append(address)
        if primary is not None and ranges:
            shards.append(Shard(primary, ranges, tuple(replicas), online))
    return SlotMap.of(shards)


def parse_slots(reply: RespValue, asked: Address) -> SlotMap:
    """A ``CLUSTER SLOTS`` reply as a map (servers without CLUSTER SHARDS)."""
    if not isinstance(reply, list):
        raise SlotMapError(f"CLUSTER SLOTS answered {_text(reply)!r}")
    by_primary: dict[Address, tuple[list[tuple[int, int]], list[Address]]] = {}
    for entry in reply:
        if not isinstance(entry, list) or len(entry) < 3:
            continue
        start, end, *nodes = entry
        addresses = []
        for node in nodes:
            if isinstance(node, list) and len(node) >= 2 and isinstance(node[1], int):
                host = _text(node[0]) if node[0] not in (None, b"", b"?") else asked[0]
                addresses.append((host, node[1]))
        if not addresses or not isinstance(start, int) or not isinstance(end, int):
            continue
        ranges, replicas = by_primary.setdefault(addresses[0], ([], []))
        ranges.append((start, end))
        replicas.extend(a for a in addresses[1:] if a not in replicas)
    return SlotMap.of(
        [Shard(p, tuple(ranges), tuple(reps)) for p, (ranges, reps) in by_primary.items()]
    )
