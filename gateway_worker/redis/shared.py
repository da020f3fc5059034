"""``SharedConnections``: the multiplexed connections of a client, one per target.

A target is a database number for a standalone Redis, a node address for a cluster.
Every request of the worker bound for that target writes on the same
``RespConnection`` (replies matched in order, writes of one loop iteration in one
syscall). This class keeps them:

* ``get(target)``: the open connection, opened on first use; concurrent callers share
  one connect (``connect`` is the client's own function: it logs, tracks health).
* ``sweep(timeout)``: fail the requests waiting longer than the command timeout (one
  periodic pass instead of a timer per request), and close retired connections once
  their replies are in (or after twice the timeout).
* ``replace(target, new)`` / ``retire(target)``: a refresh swaps in a new connection,
  a topology change drops one; the old one keeps the replies it owes and is closed by
  the sweeper, so no request sees the change.

``conns`` is the dict itself: the standalone fast path reads it directly (no call).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from gateway_worker.redis.connection import RespConnection

K = TypeVar("K", bound=Hashable)


class SharedConnections(Generic[K]):
    """The multiplexed connections, by target (see the module docstring)."""

    def __init__(self, connect: Callable[[K], Awaitable[RespConnection]]) -> None:
        self._connect = connect
        self.conns: dict[K, RespConnection] = {}
        self._opening: dict[K, asyncio.Task[RespConnection]] = {}
        self._retiring: list[tuple[RespConnection, float]] = []

    async def get(self, target: K) -> RespConnection:
        """The shared connection for ``target``; concurrent callers share one connect."""
        conn = self.conns.get(target)
        if conn is not None and conn.is_open:
            return conn
        task = self._opening.get(target)
        if task is None:
            task = asyncio.create_task(self._open(target), name=f"redis-connect-{target}")
            # Retrieve the exception even when every waiter was cancelled.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._opening[target] = task
        return await asyncio.shield(task)

    async def _open(self, target: K) -> RespConnection:
        try:
            conn = await self._connect(target)
            self.conns[target] = conn
            return conn
        finally:
            self._opening.pop(target, None)

    def replace(self, target: K, old: RespConnection, new: RespConnection) -> bool:
        """Swap ``new`` in for ``old`` (a refresh); False (``new`` closed) when ``old``
        was meanwhile replaced or lost."""
        if self.conns.get(target) is old and old.is_open:
            self.conns[target] = new
            self._retiring.append((old, asyncio.get_running_loop().time()))
            return True
        new.close()
        return False

    def retire(self, target: K) -> None:
        """Stop using ``target``'s connection; it is closed once its replies are in."""
        conn = self.conns.pop(target, None)
        if conn is not None:
            self._retiring.append((conn, asyncio.get_running_loop().time()))

    def sweep(self, timeout: float) -> list[RespConnection]:
        """Expire requests older than ``timeout``; returns the connections that had some.
        Retired connections are closed once drained, or after ``2 * timeout``."""
        late = [
            conn
            for conn in [*self.conns.values(), *(c for c, _ in self._retiring)]
            if conn.pending and conn.expire(timeout)
        ]
        if self._retiring:
            now = asyncio.get_running_loop().time()
            keep = []
            for conn, since in self._retiring:
                if conn.pending and now - since < 2 * timeout:
                    keep.append((conn, since))
                else:
                    conn.close()
            self._retiring = keep
        return late

    def close_all(self) -> list[RespConnection]:
        """Close every connection (retired ones too); returns them, to wait on."""
        closing = [*self.conns.values(), *(c for c, _ in self._retiring)]
        self.conns.clear()
        self._retiring = []
        for conn in closing:
            conn.close()
        return closing
