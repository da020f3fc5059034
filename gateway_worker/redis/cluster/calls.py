"""``Caller``: one command to one target of the cluster, following what the cluster
answers, on the node's shared (multiplexed) connection.

* ``MOVED slot node``: the map learns it at once (``SlotMap.moved``), a full refresh
  starts in the background, and the command goes to that node;
* ``ASK slot node``: the slot is being migrated: ``ASKING`` then the command go to that
  node, back to back on its shared connection (nothing can come between two writes of
  one loop iteration), and the map is left alone;
* ``TRYAGAIN`` (multi-key command during a migration) and ``CLUSTERDOWN`` (a failover
  under way): retried every ``redis.retry_delay_ms`` until
  ``redis.command_timeout_seconds`` has passed, then ``RedisUnavailable`` (503);
* a node that cannot be reached: the map is read again and the command retried
  ``redis.max_retries`` times, ``redis.retry_delay_ms`` apart; as in standalone mode, a
  write whose connection died after it was sent is not retried (it may have run).

At most ``MAX_HOPS`` redirects per command (a loop between nodes is a broken cluster).
``submit`` writes a command at once when its node's connection is open, so a pipeline
can write all its commands in order before awaiting any reply.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence

from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.batches import retrieve
from gateway_worker.redis.cluster.discovery import SlotMapKeeper
from gateway_worker.redis.cluster.nodes import NodeLinks
from gateway_worker.redis.cluster.routing import ANY, Job, Target
from gateway_worker.redis.cluster.slot_map import Address
from gateway_worker.redis.cluster.slots import SLOTS
from gateway_worker.redis.values import ReplyError, RespValue

MAX_HOPS = 5
CLUSTER_ERRORS = ("MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN")
Submitted = tuple[Address, "asyncio.Future[RespValue]"]


def redirect(reply: ReplyError, asked: Address) -> tuple[int, Address] | None:
    """(slot, node) of a ``MOVED``/``ASK`` reply (an empty host: the node asked)."""
    parts = reply.split()
    if len(parts) < 3 or not parts[1].isdigit():
        return None
    host, _, port = parts[2].rpartition(":")
    if not port.isdigit():
        return None
    host = host.strip("[]") or asked[0]
    return int(parts[1]) % SLOTS, (host, int(port))


class Caller:
    """Runs commands against the cluster's nodes (see the module docstring)."""

    def __init__(
        self,
        links: NodeLinks,
        keeper: SlotMapKeeper,
        *,
        timeout: float,
        retries: int,
        retry_delay: float,
        failed: Callable[[RedisUnavailable], RedisUnavailable],
    ) -> None:
        self._links = links
        self._conns = links.conns
        self._keeper = keeper
        self._timeout = timeout
        self._retries = retries
        self._retry_delay = retry_delay
        self._failed = failed
        self._next_any = itertools.count()

    def node_for(self, target: Target) -> Address:
        """The node serving ``target`` now; ``RedisUnavailable`` when none does."""
        if isinstance(target, tuple):
            return target
        slot_map = self._keeper.map
        if target == ANY:
            primaries = slot_map.primaries()
            if not primaries:
                raise RedisUnavailable("the cluster's slot map names no primary")
            return primaries[next(self._next_any) % len(primaries)]
        address = slot_map.primary_for(target)
        if address is None:
            raise RedisUnavailable(
                f"no primary serves slot {target} (the slot map covers "
                f"{slot_map.covered()} of {SLOTS} slots)"
            )
        return address

    def submit(self, target: Target, args: Sequence[bytes]) -> Submitted | None:
        """Write ``args`` now if its node's connection is open (else None)."""
        try:
            address = self.node_for(target)
        except RedisUnavailable:
            return None
        conn = self._conns.get(address)
        if conn is None or not conn.is_open:
            return None
        return address, conn.request(args)

    async def _send(self, address: Address, args: Sequence[bytes], asking: bool) -> Submitted:
        conn = self._conns.get(address)
        if conn is None or not conn.is_open:
            conn = await self._links.shared.get(address)
        if asking:
            conn.request([b"ASKING"]).add_done_callback(retrieve)
        return address, conn.request(args)

    async def _recover(self) -> None:
        """Before a retry: wait, and read the map again (the node may have failed over)."""
        await asyncio.sleep(self._retry_delay)
        try:
            await self._keeper.refresh()
        except RedisUnavailable:
            pass  # the retry says what is wrong

    async def call(
        self,
        target: Target,
        args: Sequence[bytes],
        read_only: bool,
        first: Submitted | None = None,
    ) -> RespValue:
        """The reply to ``args`` sent to ``target`` (``first``: already written)."""
        attempts = hops = 0
        asking: Address | None = None
        deadline: float | None = None
        while True:
            try:
                if first is None:
                    first = await self._send(asking or self.node_for(target), args, bool(asking))
                address, fut = first
            except RedisUnavailable as exc:  # not written: always safe to retry
                if attempts >= self._retries:
                    self._keeper.refresh_soon()
                    raise self._failed(exc) from None
                attempts += 1
                await self._recover()
                continue
            first, asking = None, None
            try:
                reply = await fut
            except RedisUnavailable as exc:
                self._keeper.refresh_soon()
                if attempts >= self._retries or not read_only:
                    raise self._failed(exc) from None
                attempts += 1
                await self._recover()
                continue
            if not (isinstance(reply, ReplyError) and reply.startswith(CLUSTER_ERRORS)):
                return reply
            moved = redirect(reply, address) if reply[0] in "MA" else None
            if moved is not None:
                hops += 1
                if hops > MAX_HOPS:
                    raise self._failed(RedisUnavailable(f"redirected {MAX_HOPS} times: {reply}"))
                if reply.startswith("MOVED"):
                    self._keeper.map.moved(*moved)
                    self._keeper.refresh_soon()
                    # A fan-out part follows to that node; anything else (ANY too:
                    # a command we could not route) to that slot, now mapped there.
                    target = moved[1] if isinstance(target, tuple) else moved[0]
                else:
                    asking = moved[1]
                continue
            deadline = await self._wait_out(reply, deadline)

    async def _wait_out(self, reply: ReplyError, deadline: float | None) -> float:
        """TRYAGAIN / CLUSTERDOWN: wait, then retry, up to redis.command_timeout_seconds
        from the first such reply (the deadline, returned for the next one)."""
        now = asyncio.get_running_loop().time()
        deadline = deadline or now + self._timeout
        if now >= deadline:
            raise self._failed(
                RedisUnavailable(
                    f"the cluster kept answering {reply} for "
                    f"redis.command_timeout_seconds={self._timeout:g}"
                )
            )
        if reply.startswith("CLUSTERDOWN"):
            self._keeper.refresh_soon()
        await asyncio.sleep(max(self._retry_delay, 0.01))
        return deadline

    async def run(self, job: Job, read_only: bool) -> RespValue:
        """Every part of ``job`` at once; their replies merged."""
        return await self.finish(job, read_only, [self.submit(p.target, p.args) for p in job.parts])

    async def finish(
        self, job: Job, read_only: bool, submitted: Sequence[Submitted | None]
    ) -> RespValue:
        replies = await asyncio.gather(
            *(
                self.call(p.target, p.args, read_only, first)
                for p, first in zip(job.parts, submitted, strict=True)
            )
        )
        return job.merge([(_node_of(p.target), r) for p, r in zip(job.parts, replies, strict=True)])


def _node_of(target: Target) -> Address:
    """The node of a fan-out part; a split part is named by its slot."""
    return target if isinstance(target, tuple) else ("slot", target)
