"""``SlotMapKeeper``: the current slot map, and its refreshes.

The map is read from the cluster (``CLUSTER SHARDS``, ``CLUSTER SLOTS`` on servers
without it), asking the known nodes in turn (primaries, then replicas, then the seed
nodes ``redis.nodes``) until one answers. A refresh runs

* at start (the worker does not boot without a map),
* after a ``MOVED`` or a connection failure (``refresh_soon``: in the background, at
  most one at a time and one per ``MIN_INTERVAL``, so a storm of redirects costs one),
* before retrying a command whose node could not be reached (``refresh``: awaited),
* on every health check (``redis.health_check_interval_seconds``).

A new map retires the links of nodes that are no longer primaries (``NodeLinks``).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.cluster.nodes import NodeLinks
from gateway_worker.redis.cluster.slot_map import (
    Address,
    SlotMap,
    SlotMapError,
    parse_shards,
    parse_slots,
    shown,
)
from gateway_worker.redis.connection import RespConnection, open_connection
from gateway_worker.redis.values import ReplyError, RespValue

log = structlog.get_logger("gateway_worker.redis")

#: Background refreshes are at least this far apart (seconds).
MIN_INTERVAL = 0.1


class SlotMapKeeper:
    """The slot map of a cluster (see the module docstring)."""

    def __init__(self, seeds: list[Address], links: NodeLinks, timeout: float) -> None:
        self.seeds = seeds
        self.map = SlotMap()
        self._links = links
        self._timeout = timeout
        self._tls = links.template.ssl_context is not None
        self._task: asyncio.Task[SlotMap] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._last = 0.0

    async def refresh(self) -> SlotMap:
        """Read the map again (joining a refresh under way); ``RedisUnavailable`` when
        no node answers."""
        task = self._task
        if task is None:
            task = asyncio.create_task(self._refresh(), name="redis-cluster-map")
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._task = task
        return await asyncio.shield(task)

    def refresh_soon(self) -> None:
        """Start a refresh in the background, unless one runs or ran just now."""
        if self._task is None and asyncio.get_running_loop().time() - self._last > MIN_INTERVAL:
            task = asyncio.create_task(self._quiet_refresh(), name="redis-cluster-map-soon")
            self._background.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._background.discard)

    async def _quiet_refresh(self) -> None:
        with contextlib.suppress(RedisUnavailable):
            await self.refresh()

    async def close(self) -> None:
        for task in [*self._background, *([self._task] if self._task else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisUnavailable):
                await task

    async def _refresh(self) -> SlotMap:
        try:
            new = await self._fetch()
        finally:
            self._task = None
            self._last = asyncio.get_running_loop().time()
        old = self.map
        self.map = new
        if old.primaries() != new.primaries() or old.owner != new.owner:
            log.info(
                "redis.cluster_map",
                primaries=[shown(a) for a in new.primaries()],
                covered=new.covered(),
            )
        self._links.forget(new.primaries())
        return new

    async def _fetch(self) -> SlotMap:
        problems: list[str] = []
        for address in dict.fromkeys([*self.map.nodes(), *self.seeds]):
            try:
                return await self._ask(address)
            except (RedisUnavailable, SlotMapError, TimeoutError) as exc:
                problems.append(f"{shown(address)}: {exc or 'no reply in time'}")
        raise RedisUnavailable("no cluster node gave its slot map: " + "; ".join(problems))

    async def _ask(self, address: Address) -> SlotMap:
        conn = self._links.conns.get(address)
        temporary: RespConnection | None = None
        if conn is None or not conn.is_open:
            conn = temporary = await open_connection(self._links.options(address))
        try:
            async with asyncio.timeout(self._timeout):
                reply = await conn.request([b"CLUSTER", b"SHARDS"])
                if _unknown(reply):
                    reply = await conn.request([b"CLUSTER", b"SLOTS"])
                    return parse_slots(_checked(reply), address)
                return parse_shards(_checked(reply), address, self._tls)
        finally:
            if temporary is not None:
                temporary.close()


def _unknown(reply: RespValue) -> bool:
    return isinstance(reply, ReplyError) and "unknown subcommand" in reply.lower()


def _checked(reply: RespValue) -> RespValue:
    if isinstance(reply, ReplyError):
        hint = ' (redis.mode = "cluster" needs cluster nodes)' if "cluster support" in reply else ""
        raise SlotMapError(f"answered {reply}{hint}")
    return reply
