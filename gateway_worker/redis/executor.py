"""The Redis executor interface: what protocol handlers (and the rate limiter, and
tracing) use to talk to Redis, implemented by ``gateway_worker.redis.client.RedisClient``.

Replies are ``gateway_worker.redis.values.RespValue``; connection problems are raised
as ``gateway_worker.errors.RedisUnavailable``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from gateway_worker.redis.connection import ConnectOptions
from gateway_worker.redis.values import ReplyError, RespValue

#: Called with a short, bounded kind ("unavailable", "timeout") on every Redis failure.
ErrorHook = Callable[[str], None]


class DedicatedConnection(Protocol):
    """A connection used by one request alone (blocking commands, MULTI/EXEC, pub/sub)."""

    async def send(self, args: Sequence[bytes]) -> None:
        """Write one command without waiting for its reply."""

    async def read(self, timeout: float | None = None) -> RespValue:
        """Read the next reply (or pushed pub/sub message)."""

    async def execute(self, args: Sequence[bytes], timeout: float | None = None) -> RespValue:
        """send() then read()."""


class RedisExecutor(Protocol):
    """What protocol handlers use to talk to Redis (implemented by ``RedisClient``)."""

    async def execute(self, args: Sequence[bytes], db: int | None = None) -> RespValue:
        """Run one command on the worker's shared multiplexed connection
        (or a dedicated one when it is a blocking command). ``db`` selects another
        database for this command only (Webdis ``/DB/CMD``)."""

    async def pipeline(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue]:
        """Run several commands back to back, not atomically; one reply each."""

    async def transaction(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue] | ReplyError:
        """MULTI ... EXEC on one dedicated connection; a ReplyError if discarded."""

    def dedicated(self, db: int | None = None) -> AbstractAsyncContextManager[DedicatedConnection]:
        """Borrow a dedicated connection (pool bounded by redis.pool_max_size)."""

    async def ping(self) -> bool:
        """True when Redis answers PING within the command timeout."""


class RedisBackend(RedisExecutor, Protocol):
    """What the app owns: a ``RedisExecutor`` for one topology (``redis.mode``), with
    its lifecycle and readiness (built by ``gateway_worker.redis.topology``)."""

    @property
    def healthy(self) -> bool:
        """Whether Redis answered last time anyone looked (logged on every change)."""

    @property
    def last_error(self) -> str | None:
        """The last Redis failure, for ``/readyz`` and logs."""

    @property
    def where(self) -> str:
        """What it talks to, for logs and errors (never credentials)."""

    @property
    def stream_options(self) -> ConnectOptions:
        """Where a stream's own connection goes now (the pub/sub hub, a MONITOR feed)."""

    async def start(self) -> None:
        """Connect and check Redis answers; ``RedisUnavailable`` if not (worker boot)."""

    async def execute_own(self, args: Sequence[bytes]) -> RespValue:
        """Run a command of the gateway's own making on the shared connection, a script
        included: no script guard and no dedicated connection, for the short scripts the
        gateway wrote itself (the rate limiter's). Never for a client's command."""

    async def close(self) -> None:
        """Close every connection and stop the background tasks."""

    def unready_reason(self) -> str:
        """Why the last ``ping()`` failed (``/readyz``)."""
