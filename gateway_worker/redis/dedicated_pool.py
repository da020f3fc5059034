"""``DedicatedPool``: connections lent to one request at a time (blocking commands,
MULTI/EXEC, scripts, pub/sub), bounded by ``redis.pool_max_size``.

``acquire(target)`` waits at most ``redis.pool_timeout_seconds`` for a free place
(``PoolExhausted`` otherwise: Redis itself is fine), then reuses an idle connection to
``target`` or opens one; ``release(target, conn, clean)`` puts it back only when the
request ended cleanly and the connection kept no session state (``idle_clean``),
else closes it. A target is a database (standalone) or a node (cluster: one pool per
node).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.connection import RespConnection

K = TypeVar("K", bound=Hashable)


class PoolExhausted(RedisUnavailable):
    """No dedicated connection became free in time (Redis itself may be fine)."""


class DedicatedPool(Generic[K]):
    """Dedicated connections, by target (see the module docstring)."""

    def __init__(
        self,
        max_size: int,
        wait_seconds: float,
        connect: Callable[[K], Awaitable[RespConnection]],
    ) -> None:
        self._max_size = max_size
        self._wait = wait_seconds
        self._connect = connect
        self._places = asyncio.Semaphore(max_size)
        self._idle: dict[K, list[RespConnection]] = {}

    async def acquire(self, target: K) -> RespConnection:
        """A dedicated connection to ``target``; ``PoolExhausted`` or the connect error."""
        try:
            async with asyncio.timeout(self._wait):
                await self._places.acquire()
        except TimeoutError:
            raise PoolExhausted(
                f"no dedicated Redis connection free within {self._wait}s "
                f"(redis.pool_max_size={self._max_size})"
            ) from None
        try:
            idle = self._idle.get(target)
            while idle:
                candidate = idle.pop()
                if candidate.is_open:
                    return candidate
            return await self._connect(target)
        except BaseException:
            self._places.release()
            raise

    def release(self, target: K, conn: RespConnection, clean: bool) -> None:
        """Give ``conn`` back (kept idle when ``clean`` and reusable, else closed)."""
        if clean and conn.idle_clean:
            self._idle.setdefault(target, []).append(conn)
        else:
            conn.close()
        self._places.release()

    def drop_idle(self, target: K | None = None) -> None:
        """Close idle connections (of ``target``, or all); reopened on demand."""
        lists = [self._idle.get(target, [])] if target is not None else self._idle.values()
        for idle in lists:
            while idle:
                idle.pop().close()

    def close_all(self) -> list[RespConnection]:
        """Close every idle connection; returns them, to wait on."""
        closing = [c for idle in self._idle.values() for c in idle]
        self._idle.clear()
        for conn in closing:
            conn.close()
        return closing
