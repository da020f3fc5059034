"""``NodeLinks``: what the cluster client holds per node.

* one multiplexed connection per node (``SharedConnections`` keyed by address): every
  request bound for that node's slots shares it, with the same auto-pipelining as the
  standalone client;
* a pool of dedicated connections per node (``DedicatedPool``, ``redis.pool_max_size``
  each): blocking commands, MULTI/EXEC, scripts and subscriptions;
* a script guard per node: SCRIPT KILL must reach the node the script runs on.

``forget(nodes)`` drops what belongs to nodes that are no longer primaries (after a
failover or a resharding): their shared connections are retired (the replies they owe
still come), idle dedicated ones closed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from gateway_worker.redis.cluster.slot_map import Address
from gateway_worker.redis.connection import ConnectOptions, RespConnection, open_connection
from gateway_worker.redis.dedicated_pool import DedicatedPool
from gateway_worker.redis.scripts import ScriptGuard, StuckScript
from gateway_worker.redis.shared import SharedConnections


class NodeLinks:
    """Connections and script guards, by node address (see the module docstring)."""

    def __init__(
        self,
        template: ConnectOptions,
        pool_max_size: int,
        pool_wait: float,
        timeout: float,
        on_open: Callable[[], None] = lambda: None,
    ) -> None:
        self.template = template
        self._on_open = on_open
        self._timeout = timeout
        self._pool_max_size = pool_max_size
        self._pool_wait = pool_wait
        self.shared: SharedConnections[Address] = SharedConnections(self._open)
        self.conns = self.shared.conns
        self._pools: dict[Address, DedicatedPool[Address]] = {}
        self._guards: dict[Address, ScriptGuard] = {}

    def options(self, address: Address) -> ConnectOptions:
        return self.template.at(*address)

    async def _open(self, address: Address) -> RespConnection:
        conn = await open_connection(self.options(address))
        self._on_open()
        return conn

    async def _open_dedicated(self, address: Address) -> RespConnection:
        return await open_connection(self.options(address), dedicated=True)

    def pool(self, address: Address) -> DedicatedPool[Address]:
        pool = self._pools.get(address)
        if pool is None:
            pool = DedicatedPool(self._pool_max_size, self._pool_wait, self._open_dedicated)
            self._pools[address] = pool
        return pool

    def guard(self, address: Address) -> ScriptGuard:
        guard = self._guards.get(address)
        if guard is None:
            guard = ScriptGuard(self.options(address), self._timeout)
            self._guards[address] = guard
        return guard

    def stuck(self) -> StuckScript | None:
        return next((g.stuck for g in self._guards.values() if g.stuck is not None), None)

    def forget(self, keep: Iterable[Address]) -> None:
        """Retire the links of every node not in ``keep`` (the primaries now)."""
        kept = set(keep)
        for address in [a for a in self.conns if a not in kept]:
            self.shared.retire(address)
        for address, pool in self._pools.items():
            if address not in kept:
                pool.drop_idle()

    def close_all(self) -> list[RespConnection]:
        closing = self.shared.close_all()
        for pool in self._pools.values():
            closing.extend(pool.close_all())
        return closing
