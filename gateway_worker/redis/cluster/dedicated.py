"""Dedicated connections in a cluster: on the node that serves the command's slot.

* ``Exclusive.call``: a blocking command or a script, alone on a dedicated connection
  of its node (the script under that node's guard), following ``MOVED``/``ASK`` like
  the shared path (a redirect comes back at once, before anything blocks or runs);
* ``Exclusive.transaction``: MULTI/EXEC on the node of the one slot its keys share;
  a transaction the node discarded because the slot moved (``MOVED``/``ASK`` while
  queueing: nothing ran) is sent again to the right node;
* ``RoutedConnection``: what ``dedicated()`` lends (subscriptions, streams): it
  connects on its first command, to the node of that command's keys (``SSUBSCRIBE``
  by its channel's slot, ``SUBSCRIBE`` to any primary: classic pub/sub reaches every
  node), and moves once if that first command is answered ``MOVED``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.batches import transaction_on
from gateway_worker.redis.cluster.calls import MAX_HOPS, Caller, redirect
from gateway_worker.redis.cluster.discovery import SlotMapKeeper
from gateway_worker.redis.cluster.nodes import NodeLinks
from gateway_worker.redis.cluster.routing import Target
from gateway_worker.redis.cluster.slot_map import Address
from gateway_worker.redis.connection import RespConnection
from gateway_worker.redis.dedicated_pool import PoolExhausted
from gateway_worker.redis.scripts import SCRIPTS
from gateway_worker.redis.values import ReplyError, RespValue

Failed = Callable[[RedisUnavailable, bool], RedisUnavailable]


class Exclusive:
    """Blocking commands, scripts and transactions (see the module docstring)."""

    def __init__(
        self,
        links: NodeLinks,
        keeper: SlotMapKeeper,
        caller: Caller,
        timeout: float,
        failed: Failed,
    ) -> None:
        self._links = links
        self._keeper = keeper
        self._caller = caller
        self._timeout = timeout
        self._failed = failed

    async def acquire(self, address: Address) -> RespConnection:
        try:
            return await self._links.pool(address).acquire(address)
        except PoolExhausted as exc:
            raise self._failed(exc, False) from None  # the cluster itself is fine
        except RedisUnavailable as exc:
            self._keeper.refresh_soon()
            raise self._failed(exc, True) from None

    def release(self, address: Address, conn: RespConnection, clean: bool) -> None:
        self._links.pool(address).release(address, conn, clean)

    def follow(self, reply: RespValue, address: Address) -> tuple[Address, bool] | None:
        """Where to send the command again after ``reply`` (the node, and whether with
        ASKING), or None when ``reply`` is the answer. A MOVED updates the map."""
        if not isinstance(reply, ReplyError) or not reply.startswith(("MOVED ", "ASK ")):
            return None
        moved = redirect(reply, address)
        if moved is None:
            return None
        if reply.startswith("MOVED"):
            self._keeper.map.moved(*moved)
            self._keeper.refresh_soon()
            return moved[1], False
        return moved[1], True

    async def call(self, target: Target, args: Sequence[bytes], name: bytes) -> RespValue:
        step: tuple[Address, bool] | None = None
        for _ in range(MAX_HOPS):
            address = step[0] if step else self._caller.node_for(target)
            conn = await self.acquire(address)
            clean = False
            try:
                if step and step[1]:
                    await conn.execute([b"ASKING"], self._timeout)
                await conn.send(args)
                if name in SCRIPTS:
                    reply = await self._links.guard(address).reply(conn, name)
                else:
                    reply = await conn.read(None)
                clean = True
            finally:
                self.release(address, conn, clean)
            step = self.follow(reply, address)
            if step is None:
                return reply
        raise self._failed(RedisUnavailable(f"redirected {MAX_HOPS} times: {reply!r}"), True)

    async def transaction(
        self, target: Target, commands: Sequence[Sequence[bytes]]
    ) -> list[RespValue] | ReplyError:
        step: tuple[Address, bool] | None = None
        for _ in range(MAX_HOPS):
            address = step[0] if step else self._caller.node_for(target)
            conn = await self.acquire(address)
            clean = False
            try:
                asking = bool(step and step[1])
                result = await transaction_on(
                    conn, commands, self._links.guard(address), self._timeout, asking
                )
                clean = True
            finally:
                self.release(address, conn, clean)
            # "EXECABORT ... (MOVED 12 host:port)": the queueing error says where.
            queued = result.rpartition("(")[2].rstrip(")") if isinstance(result, str) else ""
            step = self.follow(ReplyError(queued), address) if queued else None
            if step is None:
                return result
        return ReplyError(f"EXECABORT the slot kept moving ({MAX_HOPS} redirects)")


class RoutedConnection:
    """A ``DedicatedConnection`` placed by its first command (module docstring)."""

    def __init__(
        self, exclusive: Exclusive, caller: Caller, route: Callable[[Sequence[bytes]], Target]
    ) -> None:
        self._exclusive = exclusive
        self._caller = caller
        self._route = route
        self._conn: RespConnection | None = None
        self._address: Address | None = None
        self._first: Sequence[bytes] | None = None
        self._moves = 0
        #: Answered to the first read instead of running anything (a /DB/ prefix).
        self.refusal: ReplyError | None = None

    async def _place(self, args: Sequence[bytes], address: Address | None = None) -> RespConnection:
        address = address or self._caller.node_for(self._route(args))
        self._conn = await self._exclusive.acquire(address)
        self._address = address
        return self._conn

    async def send(self, args: Sequence[bytes]) -> None:
        if self.refusal is not None:
            return
        conn = self._conn
        if conn is None:
            self._first = args
            conn = await self._place(args)
        await conn.send(args)

    async def read(self, timeout: float | None = None) -> RespValue:
        if self.refusal is not None:
            refusal, self.refusal = self.refusal, None
            return refusal
        if self._conn is None or self._address is None:
            raise RedisUnavailable("nothing was sent on this dedicated connection")
        reply = await self._conn.read(timeout)
        first, self._first = self._first, None
        if first is None or self._moves >= MAX_HOPS:
            return reply
        step = self._exclusive.follow(reply, self._address)
        if step is None:
            return reply
        self._moves += 1
        self.release(clean=False)
        address, asking = step
        conn = await self._place(first, address)
        if asking:
            await conn.execute([b"ASKING"], None)
        await self.send(first)
        self._first = first
        return await self.read(timeout)

    async def execute(self, args: Sequence[bytes], timeout: float | None = None) -> RespValue:
        await self.send(args)
        return await self.read(timeout)

    def release(self, clean: bool) -> None:
        if self._conn is not None and self._address is not None:
            self._exclusive.release(self._address, self._conn, clean)
        self._conn = self._address = None
