"""One connection to Redis: opening it (TCP, TLS, unix socket, AUTH, SELECT) and the
asyncio Protocol that writes commands and matches replies.

A ``RespConnection`` is used two ways:

* multiplexed (``request()``): every request of the worker writes its command and gets a
  future; replies come back in FIFO order and resolve the futures in turn. Writes made in
  the same event-loop iteration leave in one ``write()`` (pipelining for free).
* dedicated (``send()`` / ``read()``): one request alone reads replies (and pub/sub
  pushes) as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import cast
from urllib.parse import unquote, urlsplit

from gateway_worker.config import RedisConfig
from gateway_worker.config.redis_connection import split_node
from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.values import ReplyError, RespValue
from gateway_worker.redis.wire import ProtocolViolation, ReplyParser, encode_command

DEFAULT_URL = "redis://127.0.0.1:6379"

# Commands after which a dedicated connection is not handed to another request.
_SESSION_STATE = frozenset(
    {
        b"SUBSCRIBE",
        b"PSUBSCRIBE",
        b"SSUBSCRIBE",
        b"MONITOR",
        b"SELECT",
        b"HELLO",
        b"AUTH",
        b"CLIENT",
        b"RESET",
        b"WATCH",
        b"READONLY",
    }
)


@dataclass(frozen=True)
class ConnectOptions:
    """Where and how to connect; built once from ``RedisConfig``."""

    host: str | None
    port: int
    unix_path: str | None
    ssl_context: ssl.SSLContext | None
    username: str | None
    password: str | None
    db: int
    connect_timeout: float
    #: Why the TLS context could not be built (missing/bad files): reported when a
    #: connection is attempted, so a worker fails to *start* with this message.
    tls_error: str | None = None

    @property
    def where(self) -> str:
        """Address for error messages (never credentials)."""
        if self.unix_path:
            return f"unix://{self.unix_path}"
        scheme = "rediss" if self.ssl_context or self.tls_error else "redis"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @classmethod
    def from_config(cls, cfg: RedisConfig) -> ConnectOptions:
        """Parse ``redis.url`` and merge credentials: config values win over the URL's."""
        parts = urlsplit(cfg.url or DEFAULT_URL)
        url_user = unquote(parts.username) if parts.username else None
        url_password = unquote(parts.password) if parts.password else None
        password = cfg.default_password.get_secret_value() if cfg.default_password else url_password
        context: ssl.SSLContext | None = None
        tls_error: str | None = None
        if parts.scheme == "rediss":
            try:
                context = _ssl_context(cfg)
            except (OSError, ssl.SSLError) as exc:
                tls_error = f"redis.tls: {exc}"
        return cls(
            host=parts.hostname if parts.scheme != "unix" else None,
            port=parts.port or 6379,
            unix_path=parts.path if parts.scheme == "unix" else None,
            ssl_context=context,
            username=cfg.username or url_user,
            password=password,
            db=cfg.selected_db,
            connect_timeout=cfg.connection_timeout_seconds,
            tls_error=tls_error,
        )

    @classmethod
    def for_nodes(cls, cfg: RedisConfig, sentinels: bool = False) -> ConnectOptions:
        """Options for ``redis.nodes`` (cluster nodes, or the sentinels' masters and
        replicas; ``sentinels``: the Sentinels themselves, with their own credentials),
        pointed at the first node; ``at()`` points them elsewhere."""
        context: ssl.SSLContext | None = None
        tls_error: str | None = None
        if cfg.tls.enabled:
            try:
                context = _ssl_context(cfg)
            except (OSError, ssl.SSLError) as exc:
                tls_error = f"redis.tls: {exc}"
        host, port = split_node(cfg.nodes[0]) if cfg.nodes else ("127.0.0.1", 6379)
        if sentinels:
            secret, username = cfg.sentinel_password, cfg.sentinel_username
        else:
            secret, username = cfg.default_password, cfg.username
        return cls(
            host=host,
            port=port,
            unix_path=None,
            ssl_context=context,
            username=username,
            password=secret.get_secret_value() if secret else None,
            db=0 if sentinels else cfg.db,
            connect_timeout=cfg.connection_timeout_seconds,
            tls_error=tls_error,
        )

    def at(self, host: str, port: int) -> ConnectOptions:
        """The same options for the node at ``host:port``."""
        return replace(self, host=host, port=port, unix_path=None)


def _ssl_context(cfg: RedisConfig) -> ssl.SSLContext:
    tls = cfg.tls
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class RespConnection(asyncio.Protocol):
    """An open RESP2 connection (see the module docstring for the two ways to use it)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self._parser = ReplyParser()
        self._transport: asyncio.Transport | None = None
        self._waiters: deque[asyncio.Future[RespValue]] = deque()
        self._sent_at: deque[float] = deque()
        self._pushed: deque[RespValue] = deque()
        self._push_waiter: asyncio.Future[None] | None = None
        self._dedicated = False
        self._out: list[bytes] = []
        self._lost: RedisUnavailable | None = None
        self._loop = asyncio.get_running_loop()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._unanswered = 0  # dedicated use: commands sent minus replies read
        self.reusable = True  # dedicated use: False once its session state changed

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            replies = self._parser.feed(data)
        except ProtocolViolation as exc:
            self._fail(RedisUnavailable(f"protocol error from Redis at {self.where}: {exc}"))
            return
        if self._dedicated:
            self._pushed.extend(replies)
            waiter = self._push_waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        waiters = self._waiters
        for reply in replies:
            if not waiters:
                self._fail(RedisUnavailable(f"unexpected reply from Redis at {self.where}"))
                return
            fut = waiters.popleft()
            self._sent_at.popleft()
            # A future whose request timed out or was cancelled is skipped: its reply
            # still arrives and must be consumed to keep the FIFO aligned.
            if not fut.done():
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._fail(RedisUnavailable(f"connection to Redis at {self.where} lost{reason}"))
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self, timeout: float = 1.0) -> None:
        """Wait until the socket is really closed (TLS needs a few loop turns)."""
        if self._transport is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._closed)

    # -- state ------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._lost is None and self._transport is not None

    @property
    def pending(self) -> int:
        """Requests written and still waiting for their reply (multiplexed use)."""
        return len(self._waiters)

    def close(self) -> None:
        """Close the socket; waiting requests fail with ``RedisUnavailable``."""
        self._fail(RedisUnavailable(f"connection to Redis at {self.where} closed"))

    def _fail(self, error: RedisUnavailable) -> None:
        if self._lost is None:
            self._lost = error
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(error)
        waiter = self._push_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._transport is not None:
            self._transport.close()

    # -- multiplexed use --------------------------------------------------------------

    def request(self, args: Sequence[bytes]) -> asyncio.Future[RespValue]:
        """Queue one command; the future resolves with its reply."""
        if self._lost is not None:
            raise self._lost
        fut: asyncio.Future[RespValue] = self._loop.create_future()
        self._waiters.append(fut)
        self._sent_at.append(self._loop.time())
        self._write(encode_command(args))
        return fut

    def expire(self, timeout: float) -> int:
        """Fail requests waiting longer than ``timeout``; returns how many.

        Their replies, if they ever come, are skipped (the futures are done), so the
        FIFO stays aligned. Called periodically: cheaper than a timer per request.
        """
        deadline = self._loop.time() - timeout
        expired = 0
        for fut, sent_at in zip(self._waiters, self._sent_at, strict=True):
            if sent_at > deadline:
                break
            if not fut.done():
                fut.set_exception(
                    RedisUnavailable(f"Redis at {self.where} did not reply within {timeout}s")
                )
                expired += 1
        return expired

    def _write(self, data: bytes) -> None:
        # Coalesce everything written during one loop iteration into one syscall.
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(data)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self._transport is not None and self._lost is None:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    # -- dedicated use ----------------------------------------------------------------

    def make_dedicated(self) -> None:
        """Switch to reading replies (and pub/sub pushes) with ``read()``."""
        self._dedicated = True

    async def send(self, args: Sequence[bytes]) -> None:
        if self._lost is not None:
            raise self._lost
        assert self._transport is not None
        if args and args[0].upper() in _SESSION_STATE:
            self.reusable = False
        self._unanswered += 1
        self._transport.write(encode_command(args))

    async def read(self, timeout: float | None = None) -> RespValue:
        while not self._pushed:
            if self._lost is not None:
                raise self._lost
            self._push_waiter = self._loop.create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._push_waiter
            except TimeoutError:
                raise RedisUnavailable(
                    f"no reply from Redis at {self.where} within {timeout}s"
                ) from None
            finally:
                self._push_waiter = None
        self._unanswered -= 1
        return self._pushed.popleft()

    @property
    def idle_clean(self) -> bool:
        """True when a dedicated connection can go back to the pool as it is."""
        return self.reusable and self._lost is None and self._unanswered == 0 and not self._pushed

    async def execute(self, args: Sequence[bytes], timeout: float | None = None) -> RespValue:
        await self.send(args)
        return await self.read(timeout)


async def open_connection(options: ConnectOptions, *, dedicated: bool = False) -> RespConnection:
    """Connect, authenticate and select the database; ``RedisUnavailable`` on failure.

    An AUTH refusal is raised as ``RedisUnavailable`` too (with Redis's message, which
    never contains the password).
    """
    if options.tls_error:
        raise RedisUnavailable(f"cannot connect to Redis at {options.where}: {options.tls_error}")
    loop = asyncio.get_running_loop()
    conn: RespConnection | None = None
    try:
        async with asyncio.timeout(options.connect_timeout):
            if options.unix_path:
                _, conn = await loop.create_unix_connection(
                    lambda: RespConnection(options.where), options.unix_path
                )
            else:
                _, conn = await loop.create_connection(
                    lambda: RespConnection(options.where),
                    options.host or "127.0.0.1",
                    options.port,
                    ssl=options.ssl_context,
                )
            await _handshake(conn, options)
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, TimeoutError):
            raise RedisUnavailable(
                f"cannot connect to Redis at {options.where}: "
                f"no answer within {options.connect_timeout}s"
            ) from None
        if isinstance(exc, OSError):
            raise RedisUnavailable(f"cannot connect to Redis at {options.where}: {exc}") from None
        raise
    if dedicated:
        conn.make_dedicated()
    return conn


async def _handshake(conn: RespConnection, options: ConnectOptions) -> None:
    setup: list[list[bytes]] = []
    if options.password is not None:
        auth = [b"AUTH", options.password.encode()]
        if options.username:
            auth.insert(1, options.username.encode())
        setup.append(auth)
    if options.db:
        setup.append([b"SELECT", str(options.db).encode()])
    futures = [conn.request(cmd) for cmd in setup]
    for cmd, fut in zip(setup, futures, strict=True):
        reply = await fut
        if isinstance(reply, ReplyError):
            raise RedisUnavailable(f"Redis at {options.where} refused {cmd[0].decode()}: {reply}")
