"""The cluster redirect loop (``calls.Caller``) with fake node connections: MOVED,
ASK, TRYAGAIN and CLUSTERDOWN as a cluster answers them, without a cluster (the real
ones are in tests/integration/test_redis_cluster.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import cast

import pytest

from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.cluster.calls import Caller
from gateway_worker.redis.cluster.discovery import SlotMapKeeper
from gateway_worker.redis.cluster.nodes import NodeLinks
from gateway_worker.redis.cluster.routing import ANY
from gateway_worker.redis.cluster.slot_map import Address, Shard, SlotMap
from gateway_worker.redis.cluster.slots import key_slot
from gateway_worker.redis.connection import ConnectOptions, RespConnection
from gateway_worker.redis.values import ReplyError, RespValue, Status

A, B = ("10.0.0.1", 7000), ("10.0.0.2", 7000)
Script = Callable[[Address, list[bytes]], RespValue]


class FakeNode:
    """A node connection that answers from a script and records what was written."""

    def __init__(self, address: Address, script: Script, log: list[tuple[Address, bytes]]):
        self.address = address
        self.script = script
        self.log = log
        self.is_open = True
        self.pending = 0

    def request(self, args: Sequence[bytes]) -> asyncio.Future[RespValue]:
        self.log.append((self.address, b" ".join(args)))
        fut: asyncio.Future[RespValue] = asyncio.get_running_loop().create_future()
        fut.set_result(self.script(self.address, list(args)))
        return fut


def caller(script: Script, timeout: float = 0.3) -> tuple[Caller, list[tuple[Address, bytes]]]:
    options = ConnectOptions(None, 0, None, None, None, None, 0, 1.0)
    links = NodeLinks(options, 1, 1.0, timeout)
    log: list[tuple[Address, bytes]] = []
    for address in (A, B):
        links.conns[address] = cast(RespConnection, FakeNode(address, script, log))
    keeper = SlotMapKeeper([], links, timeout)
    keeper.map = SlotMap.of([Shard(A, ((0, 8191),)), Shard(B, ((8192, 16383),))])
    return (
        Caller(links, keeper, timeout=timeout, retries=1, retry_delay=0.01, failed=lambda e: e),
        log,
    )


def owner(script: Callable[[Address, list[bytes]], RespValue | None]) -> Script:
    """Answer CLUSTER SHARDS like a broken node (no refresh succeeds), else ``script``."""

    def answer(address: Address, args: list[bytes]) -> RespValue:
        if args[0] == b"CLUSTER":
            return ReplyError("ERR no map here")
        reply = script(address, args)
        return Status(b"OK") if reply is None else reply

    return answer


def test_moved_for_a_command_sent_to_any_primary_goes_to_the_node_named() -> None:
    slot = key_slot(b"k")

    def script(address: Address, args: list[bytes]) -> RespValue | None:
        if address == A and args[0] == b"MODULE.GET":
            return ReplyError(f"MOVED {slot} {B[0]}:{B[1]}")
        return b"from B" if address == B else None

    call, log = caller(owner(script))

    async def main() -> list[RespValue]:
        # ANY picks A, then B... round robin: the redirect must not go by turn.
        return [await call.call(ANY, [b"MODULE.GET", b"k"], True) for _ in range(2)]

    assert asyncio.run(main()) == [b"from B", b"from B"]
    assert [a for a, c in log if c.startswith(b"MODULE")] == [A, B, B]


def test_ask_sends_asking_then_the_command_to_the_importing_node() -> None:
    slot = key_slot(b"k")

    def script(address: Address, args: list[bytes]) -> RespValue | None:
        if address == A:
            return ReplyError(f"ASK {slot} {B[0]}:{B[1]}")
        return b"imported" if args[0] == b"GET" else None

    call, log = caller(owner(script))
    target = slot if slot < 8192 else 0
    assert asyncio.run(call.call(target, [b"GET", b"k"], True)) == b"imported"
    assert log == [(A, b"GET k"), (B, b"ASKING"), (B, b"GET k")]
    assert call.node_for(target) == A  # an ASK does not change the map


@pytest.mark.parametrize(
    "error", ["TRYAGAIN Multiple keys request during rehashing", "CLUSTERDOWN x"]
)
def test_tryagain_and_clusterdown_are_retried_then_reported(error: str) -> None:
    answers: list[RespValue] = [ReplyError(error), ReplyError(error), Status(b"OK")]

    def script(address: Address, args: list[bytes]) -> RespValue | None:
        return answers.pop(0)

    call, log = caller(owner(script))
    assert asyncio.run(call.call(0, [b"SET", b"k", b"v"], False)) == Status(b"OK")
    assert [c for _, c in log if c.startswith(b"SET")] == [b"SET k v"] * 3

    def still(address: Address, args: list[bytes]) -> RespValue | None:
        return ReplyError(error)

    call, _ = caller(owner(still), timeout=0.1)
    with pytest.raises(RedisUnavailable, match="kept answering"):
        asyncio.run(call.call(0, [b"SET", b"k", b"v"], False))
