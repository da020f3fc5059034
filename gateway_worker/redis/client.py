"""``RedisClient``: the worker's ``RedisExecutor``.

* Fast path: one multiplexed ``RespConnection`` per database, shared by every request
  of the worker (lazily opened; the configured ``redis.db`` is opened at start).
* Blocking commands, transactions and pub/sub: dedicated connections from a pool
  bounded by ``redis.pool_max_size``, waited for at most ``redis.pool_timeout_seconds``.
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
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace

import structlog

from gateway_worker.config import RedisConfig
from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.commands import CONNECTION_STATE, READ_ONLY, is_blocking
from gateway_worker.redis.connection import ConnectOptions, RespConnection, open_connection
from gateway_worker.redis.executor import DedicatedConnection
from gateway_worker.redis.scripts import SCRIPTS, ScriptGuard
from gateway_worker.redis.values import ReplyError, RespValue, Status

log = structlog.get_logger("gateway_worker.redis")

#: Called with a short, bounded kind ("unavailable", "timeout") on every Redis failure.
ErrorHook = Callable[[str], None]


def refusal(name: bytes, reason: str) -> ReplyError:
    """The error reply for a command the shared connection cannot run."""
    return ReplyError(
        f"ERR {name.decode('ascii', 'replace')} is not allowed through the gateway: {reason}"
    )


def _retrieve(fut: asyncio.Future[RespValue]) -> None:
    if not fut.cancelled():
        fut.exception()


class RedisClient:
    """Implements ``gateway_worker.redis.values.RedisExecutor`` (see the module docstring)."""

    def __init__(self, cfg: RedisConfig, on_error: ErrorHook | None = None) -> None:
        self._cfg = cfg
        self.options = ConnectOptions.from_config(cfg)
        self._db = self.options.db
        self._timeout = cfg.command_timeout_seconds
        self._retries = cfg.max_retries
        self._retry_delay = cfg.retry_delay_ms / 1000
        self._mux: dict[int, RespConnection] = {}
        self._opening: dict[int, asyncio.Task[RespConnection]] = {}
        self._idle: dict[int, list[RespConnection]] = {}
        self._pool_slots = asyncio.Semaphore(cfg.pool_max_size)
        self._tasks: list[asyncio.Task[None]] = []
        # Shared connections replaced by a refresh, closed once their replies are in.
        self._retiring: list[tuple[RespConnection, float]] = []
        self._on_error = on_error
        self.scripts = ScriptGuard(self.options, self._timeout)
        self.healthy = False
        self.last_error: str | None = None

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Open the shared connection and answer one PING; ``RedisUnavailable`` if not."""
        conn = await self._connection(self._db)
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
        closing = [
            *self._mux.values(),
            *(c for idle in self._idle.values() for c in idle),
            *(c for c, _ in self._retiring),
        ]
        self._retiring = []
        for conn in closing:
            conn.close()
        self._mux.clear()
        self._idle.clear()
        for conn in closing:
            await conn.wait_closed()

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
        db = self._db if db is None else db
        attempt = 0
        while True:
            conn = self._mux.get(db)
            try:
                if conn is None or not conn.is_open:
                    conn = await self._connection(db)
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
        blocking = scripted = False
        for i, args in enumerate(commands):
            name = args[0].upper() if args else b""
            reason = CONNECTION_STATE.get(name)
            if reason is not None:
                refused[i] = refusal(name, reason)
            else:
                runnable.append(args)
                blocking = blocking or is_blocking(name, args)
                scripted = scripted or name in SCRIPTS
        if blocking or scripted:
            # A blocking command would stall the shared connection, and a script needs
            # its guard: run them all, in order, on a connection of their own.
            replies: list[RespValue] = []
            async with self.dedicated(db) as dconn:
                for args in runnable:
                    name = args[0].upper()
                    await dconn.send(args)
                    if name in SCRIPTS:
                        replies.append(await self.scripts.reply(dconn, name))
                    else:
                        replies.append(await dconn.read(None if blocking else self._timeout))
        else:
            conn = await self._connection_with_retries(self._db if db is None else db)
            futures = [conn.request(args) for args in runnable]
            try:
                replies = [await fut for fut in futures]
            except RedisUnavailable as exc:
                for fut in futures:  # the rest fail too; nobody else will look at them
                    fut.add_done_callback(_retrieve)
                raise self._failed(exc) from None
        it = iter(replies)
        return [refused[i] if i in refused else next(it) for i in range(len(commands))]

    async def transaction(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue] | ReplyError:
        script: bytes | None = None
        for args in commands:
            name = args[0].upper() if args else b""
            if name in CONNECTION_STATE:
                return ReplyError(
                    f"ERR {name.decode('ascii', 'replace')} is not allowed inside a transaction"
                )
            script = name if name in SCRIPTS else script
        async with self.dedicated(db) as conn:
            await conn.send([b"MULTI"])
            for args in commands:
                await conn.send(args)
            if script is None:
                await conn.send([b"EXEC"])
            first_error: ReplyError | None = None
            for _ in range(len(commands) + 1):
                reply = await conn.read(self._timeout)
                if isinstance(reply, ReplyError) and first_error is None:
                    first_error = reply
            if script is None:
                result = await conn.read(self._timeout)
            else:
                # The queued commands run at EXEC, the script under its guard. EXEC goes
                # alone: Redis sends no reply of that batch while the script runs.
                await conn.send([b"EXEC"])
                result = await self.scripts.reply(conn, script)
        if isinstance(result, list):
            return result
        if isinstance(result, ReplyError):
            # EXECABORT alone does not say why; the queueing error does.
            return ReplyError(f"{result} ({first_error})") if first_error else result
        return ReplyError("EXECABORT Transaction discarded")

    @contextlib.asynccontextmanager
    async def dedicated(self, db: int | None = None) -> AsyncIterator[DedicatedConnection]:
        db = self._db if db is None else db
        try:
            async with asyncio.timeout(self._cfg.pool_timeout_seconds):
                await self._pool_slots.acquire()
        except TimeoutError:
            raise self._failed(
                RedisUnavailable(
                    f"no dedicated Redis connection free within "
                    f"{self._cfg.pool_timeout_seconds}s (redis.pool_max_size="
                    f"{self._cfg.pool_max_size})"
                ),
                outage=False,  # Redis itself is fine
            ) from None
        conn: RespConnection | None = None
        clean = False
        try:
            idle = self._idle.setdefault(db, [])
            while idle and conn is None:
                candidate = idle.pop()
                if candidate.is_open:
                    conn = candidate
            if conn is None:
                try:
                    conn = await open_connection(replace(self.options, db=db), dedicated=True)
                except RedisUnavailable as exc:
                    raise self._failed(exc) from None
            yield conn
            clean = True
        finally:
            if conn is not None:
                if clean and conn.idle_clean:
                    self._idle.setdefault(db, []).append(conn)
                else:
                    conn.close()
            self._pool_slots.release()

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

    async def _connection(self, db: int) -> RespConnection:
        """The shared connection for ``db``; concurrent callers share one connect."""
        conn = self._mux.get(db)
        if conn is not None and conn.is_open:
            return conn
        task = self._opening.get(db)
        if task is None:
            task = asyncio.create_task(self._open(db), name=f"redis-connect-db{db}")
            # Retrieve the exception even when every waiter was cancelled.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._opening[db] = task
        return await asyncio.shield(task)

    async def _open(self, db: int) -> RespConnection:
        try:
            conn = await open_connection(replace(self.options, db=db))
            self._mux[db] = conn
            if db == self._db and not self.healthy:
                if self._tasks:  # started: Redis is back (maybe before the health task saw)
                    self._availability(True)
                else:
                    log.info("redis.connected", where=self.options.where, db=db)
            return conn
        finally:
            self._opening.pop(db, None)

    async def _connection_with_retries(self, db: int) -> RespConnection:
        attempt = 0
        while True:
            try:
                return await self._connection(db)
            except RedisUnavailable as exc:
                if attempt >= self._retries:
                    raise self._failed(exc) from None
                attempt += 1
                await asyncio.sleep(self._retry_delay)

    async def _sweep(self) -> None:
        interval = min(1.0, self._timeout / 4)
        while True:
            await asyncio.sleep(interval)
            for conn in [*self._mux.values(), *(c for c, _ in self._retiring)]:
                if conn.pending and conn.expire(self._timeout):
                    self._failed(
                        RedisUnavailable(
                            f"Redis at {conn.where} did not reply within {self._timeout}s"
                        )
                    )
            if self._retiring:
                now = asyncio.get_running_loop().time()
                keep = []
                for conn, since in self._retiring:
                    if conn.pending and now - since < 2 * self._timeout:
                        keep.append((conn, since))
                    else:
                        conn.close()
                self._retiring = keep

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
            for idle in self._idle.values():
                while idle:
                    idle.pop().close()
            for db, old in list(self._mux.items()):
                try:
                    new = await open_connection(replace(self.options, db=db))
                except RedisUnavailable as exc:
                    log.warning(
                        "redis.refresh_failed", where=self.options.where, db=db, error=str(exc)
                    )
                    continue
                if self._mux.get(db) is old and old.is_open:
                    self._mux[db] = new
                    self._retiring.append((old, asyncio.get_running_loop().time()))
                else:
                    new.close()

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
