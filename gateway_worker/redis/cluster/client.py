"""``ClusterClient``: the ``RedisBackend`` of a Redis Cluster (``redis.mode = "cluster"``).

Behind the same ``RedisExecutor`` interface as a standalone Redis, so the protocols and
the app do not change:

* ``execute``: routed by slot (``routing.route``: hash tags honoured), on the node's
  shared connection (``calls.Caller``: MOVED/ASK/TRYAGAIN/CLUSTERDOWN followed);
  multi-key commands across slots split and merged, cluster-wide ones fanned out,
  node-specific ones refused with the reason; blocking commands and scripts on a
  dedicated connection of their node (``dedicated.Exclusive``);
* ``pipeline``: every command routed on its own, all written before any reply is
  awaited (each node's connection sees them in request order), replies in request
  order; one holding a blocking command or a script runs command by command;
* ``transaction``: the keys of every command must share one slot (else one
  ``CROSSSLOT`` error, nothing run); MULTI/EXEC on that slot's node;
* ``dedicated``: a connection placed by its first command (``RoutedConnection``);
* readiness (``ping``): the slot map covers all 16384 slots with online primaries, and
  every primary answers PING.

The slot map (``discovery.SlotMapKeeper``) is read at start, on MOVED, after connection
failures and on every health check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import structlog

from gateway_worker.config import RedisConfig
from gateway_worker.config.redis_connection import split_node
from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.cluster.calls import Caller, Submitted
from gateway_worker.redis.cluster.dedicated import Exclusive, RoutedConnection
from gateway_worker.redis.cluster.discovery import SlotMapKeeper
from gateway_worker.redis.cluster.nodes import NodeLinks
from gateway_worker.redis.cluster.routing import (
    ANY,
    HASH_TAG_HINT,
    Job,
    Part,
    Target,
    route,
    slots_of,
)
from gateway_worker.redis.cluster.slot_map import shown
from gateway_worker.redis.cluster.slots import SLOTS
from gateway_worker.redis.commands import CONNECTION_STATE, READ_ONLY, is_blocking, refusal
from gateway_worker.redis.connection import ConnectOptions
from gateway_worker.redis.executor import DedicatedConnection, ErrorHook
from gateway_worker.redis.scripts import SCRIPTS
from gateway_worker.redis.values import ReplyError, RespValue, Status

log = structlog.get_logger("gateway_worker.redis")


def _only_db0(db: int) -> ReplyError:
    return ReplyError(f"ERR Redis Cluster has only database 0 (the request names database {db})")


class ClusterClient:
    """Implements ``gateway_worker.redis.executor.RedisBackend`` (module docstring)."""

    def __init__(self, cfg: RedisConfig, on_error: ErrorHook | None = None) -> None:
        self._cfg = cfg
        self._timeout = cfg.command_timeout_seconds
        self.links = NodeLinks(
            ConnectOptions.for_nodes(cfg),
            cfg.pool_max_size,
            cfg.pool_timeout_seconds,
            self._timeout,
            on_open=self._connected,
        )
        self.keeper = SlotMapKeeper([split_node(n) for n in cfg.nodes], self.links, self._timeout)
        self.caller = Caller(
            self.links,
            self.keeper,
            timeout=self._timeout,
            retries=cfg.max_retries,
            retry_delay=cfg.retry_delay_ms / 1000,
            failed=self._failed,
        )
        self.exclusive = Exclusive(
            self.links, self.keeper, self.caller, self._timeout, self._failed
        )
        self._on_error = on_error
        self._tasks: list[asyncio.Task[None]] = []
        self._recheck: asyncio.Task[None] | None = None
        self.healthy = False
        self.last_error: str | None = None

    @property
    def stream_options(self) -> ConnectOptions:
        # The first seed node: a cluster delivers classic PUBLISH to the subscribers
        # of every node, so one node's subscription hears all; MONITOR sees that node.
        return self.links.template

    @property
    def where(self) -> str:
        scheme = "rediss" if self.links.template.ssl_context else "redis"
        return f"cluster {scheme}://{','.join(self._cfg.nodes)}"

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        slot_map = await self.keeper.refresh()
        if slot_map.covered() < SLOTS:
            raise RedisUnavailable(self._coverage_problem())
        if not await self._ping_primaries():
            raise RedisUnavailable(self.last_error or "a primary did not answer PING")
        self.healthy = True
        log.info("redis.connected", where=self.where, primaries=len(slot_map.shards))
        self._tasks = [
            asyncio.create_task(self._sweep(), name="redis-timeouts"),
            asyncio.create_task(self._health(), name="redis-health"),
        ]

    async def close(self) -> None:
        if self._recheck is not None:
            self._tasks.append(self._recheck)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.keeper.close()
        for conn in self.links.close_all():
            await conn.wait_closed()

    # -- RedisExecutor ----------------------------------------------------------------

    async def execute(self, args: Sequence[bytes], db: int | None = None) -> RespValue:
        name = args[0].upper() if args else b""
        reason = CONNECTION_STATE.get(name)
        if reason is not None:
            return refusal(name, reason)
        if db:
            return _only_db0(db)
        where = route(name, args, self.keeper.map)
        if isinstance(where, int):
            if name in SCRIPTS or is_blocking(name, args):
                return await self.exclusive.call(where, args, name)
            return await self.caller.call(where, args, name in READ_ONLY)
        if isinstance(where, ReplyError):
            return where
        return await self.caller.run(where, name in READ_ONLY)

    async def execute_own(self, args: Sequence[bytes]) -> RespValue:
        where = route(args[0].upper(), args, self.keeper.map)
        if isinstance(where, int):
            return await self.caller.call(where, args, False)
        return await self.execute(args)  # (the gateway's own commands name one key)

    async def pipeline(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue]:
        if db:
            return [_only_db0(db)] * len(commands)
        if any(
            args and (args[0].upper() in SCRIPTS or is_blocking(args[0].upper(), args))
            for args in commands
        ):
            return [await self.execute(args) for args in commands]
        plans: list[tuple[Job, bool] | RespValue] = []
        for args in commands:
            name = args[0].upper() if args else b""
            reason = CONNECTION_STATE.get(name)
            where = refusal(name, reason) if reason else route(name, args, self.keeper.map)
            if isinstance(where, int):
                where = Job([Part(where, list(args))], _alone)
            plans.append((where, name in READ_ONLY) if isinstance(where, Job) else where)
        await self._open_for(plans)
        submitted: list[list[Submitted | None]] = [
            [self.caller.submit(p.target, p.args) for p in plan[0].parts]
            if isinstance(plan, tuple)
            else []
            for plan in plans
        ]
        return list(
            await asyncio.gather(
                *(
                    self.caller.finish(plan[0], plan[1], sent)
                    if isinstance(plan, tuple)
                    else _ready(plan)
                    for plan, sent in zip(plans, submitted, strict=True)
                )
            )
        )

    async def transaction(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue] | ReplyError:
        for args in commands:
            name = args[0].upper() if args else b""
            if name in CONNECTION_STATE:
                return ReplyError(
                    f"ERR {name.decode('ascii', 'replace')} is not allowed inside a transaction"
                )
        if db:
            return _only_db0(db)
        slots = slots_of(commands)
        if len(slots) > 1:
            return ReplyError(
                f"CROSSSLOT Keys in request don't hash to the same slot: a transaction runs "
                f"on one node, and the keys of its commands are in {len(slots)} slots "
                f"(nothing was run): {HASH_TAG_HINT}"
            )
        target: Target = slots.pop() if slots else ANY
        return await self.exclusive.transaction(target, commands)

    @contextlib.asynccontextmanager
    async def dedicated(self, db: int | None = None) -> AsyncIterator[DedicatedConnection]:
        conn = RoutedConnection(self.exclusive, self.caller, self._route_dedicated)
        if db:
            conn.refusal = _only_db0(db)
        clean = False
        try:
            yield conn
            clean = True
        finally:
            conn.release(clean)

    async def ping(self) -> bool:
        if self.keeper.map.covered() < SLOTS:
            self.last_error = self._coverage_problem()
            self.keeper.refresh_soon()
            return False
        return await self._ping_primaries()

    def unready_reason(self) -> str:
        stuck = self.links.stuck()
        if stuck is not None:
            return f"Redis busy: {stuck.describe()}"
        return f"Redis unavailable: {self.last_error or 'no PONG'}"

    # -- internals --------------------------------------------------------------------

    def _route_dedicated(self, args: Sequence[bytes]) -> Target:
        where = route(args[0].upper(), args, self.keeper.map) if args else ANY
        return where if isinstance(where, int) else ANY

    async def _open_for(self, plans: Sequence[tuple[Job, bool] | RespValue]) -> None:
        """Open the shared connection of every node the pipeline needs, at once."""
        nodes = set()
        for plan in plans:
            if isinstance(plan, tuple):
                for part in plan[0].parts:
                    with contextlib.suppress(RedisUnavailable):
                        nodes.add(self.caller.node_for(part.target))
        missing = [n for n in nodes if not (n in self.links.conns and self.links.conns[n].is_open)]
        if missing:
            # A node that cannot be reached is retried (and reported) by its commands.
            await asyncio.gather(
                *(self.links.shared.get(n) for n in missing), return_exceptions=True
            )

    def _coverage_problem(self) -> str:
        slot_map = self.keeper.map
        return (
            f"the cluster's slot map covers {slot_map.covered()} of {SLOTS} slots "
            f"(no online primary for {slot_map.gaps()})"
        )

    async def _ping_primaries(self) -> bool:
        primaries = self.keeper.map.primaries()

        async def ping(address: tuple[str, int]) -> str | None:
            try:
                conn = await self.links.shared.get(address)
                async with asyncio.timeout(self._timeout):
                    reply = await conn.request([b"PING"])
            except (RedisUnavailable, TimeoutError) as exc:
                return f"primary {shown(address)} did not answer PING: {exc or 'timeout'}"
            if reply != Status(b"PONG"):
                return f"primary {shown(address)} answered PING with {reply!r}"
            self.links.guard(address).ended("PING answered")
            return None

        problems = [p for p in await asyncio.gather(*map(ping, primaries)) if p]
        if problems:
            self.last_error = "; ".join(problems)
            self.keeper.refresh_soon()
            return False
        return True

    def _failed(self, exc: RedisUnavailable, outage: bool = True) -> RedisUnavailable:
        self.last_error = str(exc)
        if outage:
            self._availability(False)
        if self._on_error is not None:
            self._on_error("timeout" if "did not reply" in str(exc) else "unavailable")
        return exc

    async def _sweep(self) -> None:
        interval = min(1.0, self._timeout / 4)
        while True:
            await asyncio.sleep(interval)
            for conn in self.links.shared.sweep(self._timeout):
                self._failed(
                    RedisUnavailable(f"Redis at {conn.where} did not reply within {self._timeout}s")
                )

    async def _health(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.health_check_interval_seconds)
            with contextlib.suppress(RedisUnavailable):
                await self.keeper.refresh()
            self._availability(await self.ping())

    def _connected(self) -> None:
        """A node connection opened: after an outage, check now whether the cluster is
        whole again (logged when a request notices, not only by the health task)."""
        if not self.healthy and self._tasks and self._recheck is None:
            self._recheck = asyncio.create_task(self._check_again(), name="redis-recheck")

    async def _check_again(self) -> None:
        try:
            self._availability(await self.ping())
        finally:
            self._recheck = None

    def _availability(self, available: bool) -> None:
        if available != self.healthy:
            (log.info if available else log.warning)(
                "redis.health",
                healthy=available,
                where=self.where,
                error=None if available else self.last_error,
            )
        self.healthy = available


def _alone(parts: Sequence[tuple[tuple[str, int], RespValue]]) -> RespValue:
    return parts[0][1]


async def _ready(value: RespValue) -> RespValue:
    return value
