"""``SentinelClient``: the ``RedisBackend`` of a Sentinel-managed master
(``redis.mode = "sentinel"``).

A standalone ``RedisClient`` pointed at the master the Sentinels name
(``discovery.find_master``: asked in turn, verified with ``ROLE``), with everything
the standalone mode has (multiplexed connection, dedicated pool, retries, script
guard). The master moves:

* on ``+switch-master`` (``watch.SwitchWatch``): the new master is verified with ROLE,
  then ``RedisClient.retarget``: new connections go there, the old shared one is
  retired;
* when a request cannot reach the master, or a write is answered ``READONLY`` (the old
  master came back as a replica): the request fails with ``RedisUnavailable`` (503;
  never a write to the wrong node) and the Sentinels are asked again, until a verified
  master is found (``redis.retry_delay_ms`` apart, at most one search at a time);
* every ``redis.health_check_interval_seconds`` the master is asked its ``ROLE``: a
  master turned replica without a failover being announced is noticed too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import structlog

from gateway_worker.config import RedisConfig
from gateway_worker.config.redis_connection import split_node
from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.client import RedisClient
from gateway_worker.redis.connection import ConnectOptions
from gateway_worker.redis.executor import DedicatedConnection, ErrorHook
from gateway_worker.redis.sentinel.discovery import find_master, role_problem
from gateway_worker.redis.sentinel.watch import SwitchWatch
from gateway_worker.redis.values import ReplyError, RespValue

log = structlog.get_logger("gateway_worker.redis")


T = TypeVar("T")


def _readonly(reply: RespValue) -> bool:
    return isinstance(reply, ReplyError) and "READONLY" in reply[:80]


class SentinelClient:
    """Implements ``gateway_worker.redis.executor.RedisBackend`` (module docstring)."""

    def __init__(self, cfg: RedisConfig, on_error: ErrorHook | None = None) -> None:
        self._cfg = cfg
        self._on_error = on_error
        self._name = cfg.sentinel_master or ""
        template = ConnectOptions.for_nodes(cfg, sentinels=True)
        self._sentinels = [template.at(*split_node(n)) for n in cfg.nodes]
        self._data = ConnectOptions.for_nodes(cfg)
        self._timeout = cfg.command_timeout_seconds
        self._retry_delay = max(cfg.retry_delay_ms / 1000, 0.05)
        # Replaced at start by a client on the master found.
        self.inner = RedisClient(cfg, on_error, options=self._data)
        self._search: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._problem: str | None = None

    @property
    def where(self) -> str:
        return f"sentinel master {self._name!r} at {self.inner.where}"

    @property
    def stream_options(self) -> ConnectOptions:
        return self.inner.options  # the master as last discovered

    @property
    def healthy(self) -> bool:
        return self.inner.healthy and self._search is None

    @property
    def last_error(self) -> str | None:
        return self.inner.last_error

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        master = await find_master(self._sentinels, self._name, self._data, self._timeout)
        self.inner = RedisClient(self._cfg, self._on_error, options=master)
        await self.inner.start()
        log.info("redis.sentinel_master", name=self._name, master=master.where)
        watch = SwitchWatch(
            self._sentinels,
            self._name,
            self._announced,
            self._cfg.health_check_interval_seconds,
            self._retry_delay,
        )
        self._tasks = [
            asyncio.create_task(watch.run(), name="redis-sentinel-watch"),
            asyncio.create_task(self._verify(), name="redis-sentinel-role"),
        ]

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._search] if self._search else [])]
        self._tasks = []  # no search starts while closing
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.inner.close()

    # -- RedisExecutor ----------------------------------------------------------------

    async def execute(self, args: Sequence[bytes], db: int | None = None) -> RespValue:
        return await self._from_master(self.inner.execute(args, db), _readonly)

    async def execute_own(self, args: Sequence[bytes]) -> RespValue:
        return await self._from_master(self.inner.execute_own(args), _readonly)

    async def pipeline(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue]:
        return await self._from_master(
            self.inner.pipeline(commands, db), lambda replies: any(map(_readonly, replies))
        )

    async def transaction(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue] | ReplyError:
        return await self._from_master(
            self.inner.transaction(commands, db),
            lambda result: isinstance(result, ReplyError) and "READONLY" in result,
        )

    async def _from_master(self, call: Awaitable[T], demoted: Callable[[T], bool]) -> T:
        """``call``'s answer. Not reaching the master, or an answer saying it is a
        replica now (``demoted``: READONLY), starts the search for the new master."""
        try:
            result = await call
        except RedisUnavailable:
            self._suspect("the master could not be reached")
            raise
        if demoted(result):
            raise self._demoted()
        return result

    @contextlib.asynccontextmanager
    async def dedicated(self, db: int | None = None) -> AsyncIterator[DedicatedConnection]:
        try:
            async with self.inner.dedicated(db) as conn:
                yield conn
        except RedisUnavailable:
            self._suspect("a dedicated connection to the master failed")
            raise

    async def ping(self) -> bool:
        return await self.inner.ping()

    def unready_reason(self) -> str:
        reason = self.inner.unready_reason()
        if self._search is not None:
            found = f": {self._problem}" if self._problem else ""
            return f"{reason} (looking for the master {self._name!r} via the Sentinels{found})"
        return reason

    # -- the master moves -------------------------------------------------------------

    def _demoted(self) -> RedisUnavailable:
        where = self.inner.where
        self._suspect(f"{where} answered READONLY")
        return RedisUnavailable(
            f"Redis at {where} answered READONLY: it is a replica now (a failover happened); "
            f"nothing was written, the gateway is moving to the new master"
        )

    def _suspect(self, why: str) -> None:
        """Look for the master again, in the background (one search at a time)."""
        if self._search is None and self._tasks:
            self._search = asyncio.create_task(self._find(why), name="redis-sentinel-search")

    async def _find(self, why: str) -> None:
        try:
            while True:
                try:
                    master = await find_master(
                        self._sentinels, self._name, self._data, self._timeout
                    )
                except RedisUnavailable as exc:
                    self._problem = str(exc)
                    await asyncio.sleep(self._retry_delay)
                    continue
                self._move_to(master, why)
                self._problem = None
                return
        finally:
            self._search = None

    async def _announced(self, host: str, port: int) -> None:
        candidate = self._data.at(host, port)
        problem = await role_problem(candidate, self._timeout)
        if problem is None:
            self._move_to(candidate, "+switch-master")
        else:
            self._suspect(f"+switch-master named {candidate.where}, but {problem}")

    def _move_to(self, master: ConnectOptions, why: str) -> None:
        old = self.inner.options
        if (master.host, master.port) == (old.host, old.port):
            return
        log.warning(
            "redis.sentinel_failover", name=self._name, old=old.where, new=master.where, why=why
        )
        self.inner.retarget(master)

    async def _verify(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.health_check_interval_seconds)
            with contextlib.suppress(RedisUnavailable):
                reply = await self.inner.execute([b"ROLE"])
                if not (isinstance(reply, list) and reply and reply[0] == b"master"):
                    self._suspect(f"{self.inner.where} no longer answers ROLE as master")
