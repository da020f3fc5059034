"""Cluster routing without a cluster: hash slots, the slot map read from CLUSTER
SHARDS/SLOTS replies, where each kind of command goes, how split and fanned-out replies
merge, and the SCAN cursor (docs/redis-topologies.md)."""

from __future__ import annotations

import pytest

from gateway_worker.redis.cluster import merge
from gateway_worker.redis.cluster.calls import redirect
from gateway_worker.redis.cluster.routing import ANY, Job, Part, route, slots_of
from gateway_worker.redis.cluster.slot_map import Shard, SlotMap, parse_shards, parse_slots
from gateway_worker.redis.cluster.slots import key_slot
from gateway_worker.redis.keys import KEY_SPECS
from gateway_worker.redis.values import ReplyError, Status

A, B, C = ("10.0.0.1", 7000), ("10.0.0.2", 7000), ("10.0.0.3", 7000)
MAP = SlotMap.of([Shard(B, ((5461, 10922),)), Shard(A, ((0, 5460),)), Shard(C, ((10923, 16383),))])


def r(*args: str) -> object:
    raw = [a.encode() for a in args]
    return route(raw[0].upper(), raw, MAP)


def test_key_slots_and_hash_tags_as_redis_computes_them() -> None:
    assert key_slot(b"foo") == 12182  # the cluster spec's example
    assert key_slot(b"123456789") == 12739  # CRC16/XMODEM check value 0x31C3 % 16384
    assert key_slot(b"{user1000}.following") == key_slot(b"{user1000}.followers")
    assert key_slot(b"{user1000}.following") == key_slot(b"user1000")
    assert key_slot(b"foo{}{bar}") != key_slot(b"bar")  # an empty tag: the whole key
    assert key_slot(b"foo{{bar}}zap") == key_slot(b"{bar")
    assert key_slot(b"foo{bar}{zap}") == key_slot(b"bar")


def test_slot_map_from_cluster_shards() -> None:
    def node(port: int, role: bytes, health: bytes = b"online") -> list[object]:
        return [
            b"id", b"x", b"port", port, b"ip", b"10.0.0.9", b"endpoint", b"10.0.0.9",
            b"role", role, b"replication-offset", 1, b"health", health,
        ]  # fmt: skip

    reply = [
        [b"slots", [10923, 16383], b"nodes", [node(7002, b"master"), node(7005, b"replica")]],
        [b"slots", [0, 5460], b"nodes", [node(7000, b"master")]],
        [b"slots", [5461, 10922], b"nodes", [node(7001, b"master", b"failed")]],
    ]
    slot_map = parse_shards(reply, ("seed", 1))  # type: ignore[arg-type]
    assert slot_map.primaries() == [("10.0.0.9", 7000), ("10.0.0.9", 7001), ("10.0.0.9", 7002)]
    assert slot_map.primary_for(12182) == ("10.0.0.9", 7002)
    assert slot_map.shards[2].replicas == (("10.0.0.9", 7005),)
    assert slot_map.covered() == 16384 - 5462  # the failed primary's slots are not
    assert slot_map.gaps() == "5461-10922"


def test_slot_map_from_cluster_slots_with_an_unknown_endpoint() -> None:
    reply = [
        [0, 100, [b"", 7000, b"id1"], [b"10.0.0.5", 7003, b"id4"]],
        [101, 199, [b"10.0.0.2", 7001, b"id2"]],
        [200, 300, [b"?", 7000, b"id1"]],  # a second range of the same node
        [301, 16383, [b"10.0.0.2", 7001, b"id2"]],
    ]
    slot_map = parse_slots(reply, ("asked.example", 7000))  # type: ignore[arg-type]
    assert slot_map.primary_for(0) == ("asked.example", 7000)
    assert slot_map.primary_for(250) == ("asked.example", 7000)
    assert slot_map.primary_for(16383) == ("10.0.0.2", 7001)
    assert slot_map.covered() == 16384
    assert len(slot_map.shards) == 2 and slot_map.shards[0].replicas == (("10.0.0.5", 7003),)


def test_moved_updates_the_map_at_once() -> None:
    slot_map = SlotMap.of([Shard(A, ((0, 16383),))])
    slot_map.moved(42, B)
    assert slot_map.primary_for(42) == B and slot_map.primary_for(43) == A
    assert redirect(ReplyError("MOVED 42 10.0.0.2:7000"), A) == (42, B)
    assert redirect(ReplyError("ASK 42 :7001"), A) == (42, ("10.0.0.1", 7001))
    assert redirect(ReplyError("MOVED 42 [::1]:7001"), A) == (42, ("::1", 7001))


def test_keyed_commands_go_to_their_slot() -> None:
    assert r("GET", "foo") == 12182
    assert r("HSET", "{u}:h", "f", "v") == key_slot(b"u")
    assert r("MGET", "{u}:a", "{u}:b") == key_slot(b"u")
    assert r("EVAL", "return 1", "2", "{u}:a", "{u}:b", "arg") == key_slot(b"u")
    assert r("XREAD", "COUNT", "1", "STREAMS", "{s}1", "{s}2", "0", "0") == key_slot(b"s")
    assert r("BLPOP", "{q}a", "{q}b", "0") == key_slot(b"q")
    assert r("MEMORY", "USAGE", "foo") == 12182
    assert r("CLUSTER", "COUNTKEYSINSLOT", "77") == 77


@pytest.mark.parametrize(
    "args",
    [
        ("PING",),
        ("TIME",),
        ("EVAL", "return 1", "0"),
        ("JSON.GET", "k"),
        ("GET",),
        ("FUNCTION", "LIST"),
    ],
)
def test_keyless_and_unknown_commands_go_to_any_primary(args: tuple[str, ...]) -> None:
    # An unknown command (a module's) goes to a primary, which answers MOVED if needed.
    assert r(*args) == ANY


def test_cross_slot_commands_are_split_and_merged_in_order() -> None:
    job = r("MGET", "a", "b", "{a}x")
    assert isinstance(job, Job)
    assert [p.args for p in job.parts] == [[b"MGET", b"a", b"{a}x"], [b"MGET", b"b"]]
    parts = [(A, [b"1", b"3"]), (B, [None])]
    assert job.merge(parts) == [b"1", None, b"3"]  # type: ignore[arg-type]
    mset = r("MSET", "a", "1", "b", "2")
    assert isinstance(mset, Job)
    assert [p.args for p in mset.parts] == [[b"MSET", b"a", b"1"], [b"MSET", b"b", b"2"]]
    assert mset.merge([(A, Status(b"OK")), (B, Status(b"OK"))]) == Status(b"OK")
    deleted = r("DEL", "a", "b", "c")
    assert isinstance(deleted, Job) and deleted.merge([(A, 1), (B, 0), (C, 1)]) == 2
    wrong = deleted.merge([(A, 1), (B, ReplyError("WRONGTYPE x"))])
    assert wrong == "WRONGTYPE x"


def test_other_cross_slot_commands_are_refused_with_the_hash_tag_hint() -> None:
    for args in [("SINTER", "a", "b"), ("MSETNX", "a", "1", "b", "2"), ("RENAME", "a", "b")]:
        refused = r(*args)
        assert isinstance(refused, ReplyError) and refused.startswith("CROSSSLOT"), args
        assert "common hash tag" in refused and args[0] in refused


def test_fan_out_to_every_primary() -> None:
    dbsize = r("DBSIZE")
    assert isinstance(dbsize, Job) and [p.target for p in dbsize.parts] == [A, B, C]
    assert dbsize.merge([(A, 1), (B, 2), (C, 3)]) == 6
    keys = r("KEYS", "*")
    assert isinstance(keys, Job) and keys.merge([(A, [b"x"]), (B, []), (C, [b"y"])]) == [b"x", b"y"]
    flush = r("FLUSHALL")
    assert isinstance(flush, Job)
    error = flush.merge([(A, Status(b"OK")), (B, ReplyError("ERR boom")), (C, Status(b"OK"))])
    assert isinstance(error, ReplyError) and "from 10.0.0.2:7000" in error
    assert "it ran on 10.0.0.1:7000, 10.0.0.3:7000" in error
    exists = r("SCRIPT", "EXISTS", "a", "b")
    assert isinstance(exists, Job) and exists.merge([(A, [1, 1]), (B, [1, 0])]) == [1, 0]
    load = r("script", "load", "return 1")
    assert isinstance(load, Job) and len(load.parts) == 3


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("INFO",), "describes one node"),
        (("CONFIG", "SET", "x", "y"), "acts on one node"),
        (("WAIT", "1", "0"), "connections are shared"),
        (("PUBSUB", "CHANNELS"), "subscribers of one node"),
        (("MOVE", "k", "1"), "only database 0"),
        (("MIGRATE", "h", "1", "k", "0", "1"), "valkey-cli --cluster reshard"),
        (("SCRIPT", "KILL"), "only LOAD, FLUSH, EXISTS are routed"),
        (("CLUSTER", "FAILOVER"), "only INFO, SHARDS"),
    ],
)
def test_node_specific_commands_are_refused_naming_why(args: tuple[str, ...], why: str) -> None:
    refused = r(*args)
    assert isinstance(refused, ReplyError) and "cluster mode" in refused and why in refused


def test_scan_cursor_names_the_shard() -> None:
    first = r("SCAN", "0", "MATCH", "a*", "COUNT", "10")
    assert isinstance(first, Job) and first.parts == [
        Part(A, [b"SCAN", b"0", b"MATCH", b"a*", b"COUNT", b"10"])
    ]
    assert first.merge([(A, [b"17", [b"k"]])]) == [b"170000", [b"k"]]  # more on shard 0
    assert first.merge([(A, [b"0", []])]) == [b"1", []]  # shard 1 from its start
    later = r("SCAN", "170002")
    assert isinstance(later, Job) and later.parts == [Part(C, [b"SCAN", b"17"])]
    assert later.merge([(C, [b"0", [b"z"]])]) == [b"0", [b"z"]]  # the last shard: done
    for bad in ("3", "abc", "-1", "007"):
        refused = r("SCAN", bad)
        assert isinstance(refused, ReplyError) and "invalid cursor" in refused
    assert merge.scan_cursor(b"0") == (0, 0)


def test_a_transaction_needs_one_slot() -> None:
    one = [[b"SET", b"{c}a", b"1"], [b"INCR", b"{c}b"], [b"PING"]]
    assert slots_of(one) == {key_slot(b"c")}
    assert len(slots_of([[b"SET", b"a", b"1"], [b"SET", b"b", b"1"]])) == 2


def test_every_first_key_command_is_routed_without_locating_its_keys() -> None:
    for name, kind in KEY_SPECS.items():
        if kind == "first" and name != "MOVE":
            assert route(name.encode(), [name.encode(), b"foo"], MAP) == 12182, name
