"""``RedisClient``: the ``RedisBackend`` of a standalone Redis (``redis.mode =
"standalone"``; the sentinel mode drives one too, pointed at the master it found).

* Fast path: one multiplexed ``RespConnection`` per database, shared by every request
  of the worker (``shared.SharedConnections``; the configured ``redis.db`` is opened
  at start).
* Blocking commands, transactions and pub/sub: dedicated connections
  (``dedicated_pool.DedicatedPool``), bounded by ``redis.pool_max_size``, waited for
  at most ``redis.pool_timeout_seconds``.
* Retries (``redis.max_retries`` x ``redis.retry_delay_ms``): a command is retried when
  it was never written (the connection could not be opened), or when it is read-only;
  a write whose connection died after it was sent may have run, so it is not retried.
* Timeouts: ``redis.command_timeout_seconds`` for every non-blocking command, enforced
  by a sweeper instead of a timer per request.
* Scripts (EVAL, FCALL, ...) run on a dedicated connection under the script guard
  (``scripts``): past the command timeout they are killed with SCRIPT KILL /
  FUNCTION KILL and the request gets ``ScriptTimeout`` (504).
* A health task PINGs every ``redis.health_check_interval_seconds``, reconnecting when
  Redis is back, so readiness and service recover without traffic.
* Every ``redis.refresh_interval_seconds`` the shared connections are replaced by new
  ones (DNS resolved anew), without failing a request (see ``_refresh``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import structlog

from gateway_worker.config import RedisConfig
from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.batches import retrieve, run_exclusive, transaction_on
from gateway_worker.redis.commands import CONNECTION_STATE, READ_ONLY, is_blocking, refusal
from gateway_worker.redis.connection import ConnectOptions, RespConnection, open_connection
from gateway_worker.redis.dedicated_pool import DedicatedPool, PoolExhausted
from gateway_worker.redis.executor import DedicatedConnection, ErrorHook
from gateway_worker.redis.scripts import SCRIPTS, ScriptGuard
from gateway_worker.redis.shared import SharedConnections
from gateway_worker.redis.values import ReplyError, RespValue, Status

log = structlog.get_logger("gateway_worker.redis")


class RedisClient:
    """Implements ``gateway_worker.redis.executor.RedisBackend`` (module docstring)."""

    def __init__(
        self,
        cfg: RedisConfig,
        on_error: ErrorHook | None = None,
        options: ConnectOptions | None = None,
    ) -> None:
        self._cfg = cfg
        self.options = options or ConnectOptions.from_config(cfg)
        self._db = self.options.db
        self._timeout = cfg.command_timeout_seconds
        self._retries = cfg.max_retries
        self._retry_delay = cfg.retry_delay_ms / 1000
        self._shared: SharedConnections[int] = SharedConnections(self._open)
        self._mux = self._shared.conns  # the fast path reads the dict itself
        self._pool: DedicatedPool[int] = DedicatedPool(
            cfg.pool_max_size, cfg.pool_timeout_seconds, self._open_dedicated
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._on_error = on_error
        self.scripts = ScriptGuard(self.options, self._timeout)
        self.healthy = False
        self.last_error: str | None = None

    @property
    def where(self) -> str:
        return self.options.where

    @property
    def stream_options(self) -> ConnectOptions:
        return self.options

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Open the shared connection and answer one PING; ``RedisUnavailable`` if not."""
        conn = await self._shared.get(self._db)
        reply = await self._await(conn.request([b"PING"]))
        if isinstance(reply, ReplyError):
            raise RedisUnavailable(f"Redis at {self.options.where} answered PING with {reply}")
        self.healthy = True
        self._tasks = [
            asyncio.create_task(self._sweep(), name="redis-timeouts"),
            asyncio.create_task(self._health(), name="redis-health"),
            asyncio.create_task(self._refresh(), name="redis-refresh"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        closing = [*self._shared.close_all(), *self._pool.close_all()]
        for conn in closing:
            await conn.wait_closed()

    def retarget(self, options: ConnectOptions) -> None:
        """Point every new connection at ``options`` (the sentinel mode's new master).

        Shared connections to the old address are retired (the replies they owe still
        come), idle dedicated ones closed; the script guard kills on the new address.
        """
        self.options = options
        self.scripts.retarget(options)
        for db in list(self._mux):
            self._shared.retire(db)
        self._pool.drop_idle()

    # -- RedisExecutor ----------------------------------------------------------------

    async def execute(self, args: Sequence[bytes], db: int | None = None) -> RespValue:
        name = args[0].upper() if args else b""
        reason = CONNECTION_STATE.get(name)
        if reason is not None:
            return refusal(name, reason)
        if is_blocking(name, args):
            async with self.dedicated(db) as dconn:
                return await dconn.execute(args, None)
        if name in SCRIPTS:
            async with self.dedicated(db) as dconn:
                await dconn.send(args)
                return await self.scripts.reply(dconn, name)
        return await self._shared_call(args, name, self._db if db is None else db)

    async def execute_own(self, args: Sequence[bytes]) -> RespValue:
        """A command of the gateway's own making (``RedisBackend.execute_own``)."""
        return await self._shared_call(args, args[0].upper(), self._db)

    async def _shared_call(self, args: Sequence[bytes], name: bytes, db: int) -> RespValue:
        """``args`` on the shared connection of ``db``, retried as the config says."""
        attempt = 0
        while True:
            conn = self._mux.get(db)
            try:
                if conn is None or not conn.is_open:
                    conn = await self._shared.get(db)
                # Once request() returned, the command may reach Redis.
                fut = conn.request(args)
            except RedisUnavailable as exc:
                if attempt >= self._retries:
                    raise self._failed(exc) from None
                attempt += 1
                await asyncio.sleep(self._retry_delay)
                continue
            try:
                return await fut
            except RedisUnavailable as exc:
                if attempt >= self._retries or name not in READ_ONLY:
                    raise self._failed(exc) from None
                attempt += 1
                await asyncio.sleep(self._retry_delay)

    async def pipeline(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue]:
        refused: dict[int, ReplyError] = {}
        runnable: list[Sequence[bytes]] = []
        exclusive = False
        for i, args in enumerate(commands):
            name = args[0].upper() if args else b""
            reason = CONNECTION_STATE.get(name)
            if reason is not None:
                refused[i] = refusal(name, reason)
            else:
                runnable.append(args)
                exclusive = exclusive or is_blocking(name, args) or name in SCRIPTS
        if exclusive:
            # A blocking command would stall the shared connection, and a script needs
            # its guard: run them all, in order, on a connection of their own.
            async with self.dedicated(db) as dconn:
                replies = await run_exclusive(dconn, runnable, self.scripts, self._timeout)
        else:
            conn = await self._connection_with_retries(self._db if db is None else db)
            futures = [conn.request(args) for args in runnable]
            try:
                replies = [await fut for fut in futures]
            except RedisUnavailable as exc:
                for fut in futures:  # the rest fail too; nobody else will look at them
                    fut.add_done_callback(retrieve)
                raise self._failed(exc) from None
        it = iter(replies)
        return [refused[i] if i in refused else next(it) for i in range(len(commands))]

    async def transaction(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue] | ReplyError:
        for args in commands:
            name = args[0].upper() if args else b""
            if name in CONNECTION_STATE:
                return ReplyError(
                    f"ERR {name.decode('ascii', 'replace')} is not allowed inside a transaction"
                )
        async with self.dedicated(db) as conn:
            return await transaction_on(conn, commands, self.scripts, self._timeout)

    @contextlib.asynccontextmanager
    async def dedicated(self, db: int | None = None) -> AsyncIterator[DedicatedConnection]:
        db = self._db if db is None else db
        try:
            conn = await self._pool.acquire(db)
        except PoolExhausted as exc:
            raise self._failed(exc, outage=False) from None  # Redis itself is fine
        except RedisUnavailable as exc:
            raise self._failed(exc) from None
        clean = False
        try:
            yield conn
            clean = True
        finally:
            self._pool.release(db, conn, clean)

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                reply = await self.execute([b"PING"])
        except TimeoutError:
            return False
        except RedisUnavailable as exc:
            if "did not reply" not in str(exc):  # Redis is gone, and so is its script
                self.scripts.ended("connection lost")
            return False
        if isinstance(reply, Status) and reply == b"PONG":
            self.scripts.ended("PING answered")
            return True
        # BUSY (a script runs), LOADING, MASTERDOWN...: say which.
        shown = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        self.last_error = f"Redis at {self.options.where} answered PING with {shown}"
        return False

    def unready_reason(self) -> str:
        """Why ``ping()`` failed, for ``/readyz``."""
        stuck = self.scripts.stuck
        if stuck is not None:
            return f"Redis busy: {stuck.describe()}"
        return f"Redis unavailable: {self.last_error or 'no PONG'}"

    # -- internals --------------------------------------------------------------------

    def _failed(self, exc: RedisUnavailable, outage: bool = True) -> RedisUnavailable:
        self.last_error = str(exc)
        if outage:
            self._availability(False)
        if self._on_error is not None:
            self._on_error("timeout" if "did not reply" in str(exc) else "unavailable")
        return exc

    async def _await(self, fut: asyncio.Future[RespValue]) -> RespValue:
        try:
            async with asyncio.timeout(self._timeout):
                return await fut
        except TimeoutError:
            raise RedisUnavailable(
                f"Redis at {self.options.where} did not reply within {self._timeout}s"
            ) from None

    async def _open(self, db: int) -> RespConnection:
        conn = await open_connection(replace(self.options, db=db))
        if db == self._db and not self.healthy:
            if self._tasks:  # started: Redis is back (maybe before the health task saw)
                self._availability(True)
            else:
                log.info("redis.connected", where=self.options.where, db=db)
        return conn

    async def _open_dedicated(self, db: int) -> RespConnection:
        return await open_connection(replace(self.options, db=db), dedicated=True)

    async def _connection_with_retries(self, db: int) -> RespConnection:
        attempt = 0
        while True:
            try:
                return await self._shared.get(db)
            except RedisUnavailable as exc:
                if attempt >= self._retries:
                    raise self._failed(exc) from None
                attempt += 1
                await asyncio.sleep(self._retry_delay)

    async def _sweep(self) -> None:
        interval = min(1.0, self._timeout / 4)
        while True:
            await asyncio.sleep(interval)
            for conn in self._shared.sweep(self._timeout):
                self._failed(
                    RedisUnavailable(f"Redis at {conn.where} did not reply within {self._timeout}s")
                )

    async def _refresh(self) -> None:
        """Reconnect every ``redis.refresh_interval_seconds`` (DNS is resolved anew).

        The new shared connection is swapped in first; the old one keeps serving the
        replies it still owes and is closed by the sweeper once they are in, so no
        request sees the change. If the new connection cannot be opened, the old one
        stays. Idle dedicated connections are simply dropped (reopened on demand).
        """
        interval = self._cfg.refresh_interval_seconds
        while True:
            await asyncio.sleep(interval)
            self._pool.drop_idle()
            for db, old in list(self._mux.items()):
                try:
                    new = await open_connection(replace(self.options, db=db))
                except RedisUnavailable as exc:
                    log.warning(
                        "redis.refresh_failed", where=self.options.where, db=db, error=str(exc)
                    )
                    continue
                self._shared.replace(db, old, new)

    async def _health(self) -> None:
        interval = self._cfg.health_check_interval_seconds
        while True:
            await asyncio.sleep(interval)
            await self.check_health()

    async def check_health(self) -> bool:
        """PING once; on a timeout drop the shared connection (it may be half-open)."""
        ok = await self.ping()
        if not ok:
            conn = self._mux.get(self._db)
            if conn is not None and conn.is_open and conn.pending:
                conn.close()
        self._availability(ok)
        return ok

    def _availability(self, available: bool) -> None:
        """Log every change, whoever notices first (a request, a reconnect, the health
        task): an outage shorter than the health-check interval is logged too."""
        if available != self.healthy:
            (log.info if available else log.warning)(
                "redis.health",
                healthy=available,
                where=self.options.where,
                error=None if available else self.last_error,
            )
        self.healthy = available
