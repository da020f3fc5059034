"""Cluster mode against a real Redis Cluster: 3 primaries + 3 replicas on 127.0.0.1
(``benchmarks.redis_topologies.LocalCluster``, one per module), behind a real gateway
app served by uvicorn, through both HTTP protocols (docs/redis-topologies.md).

The tests that change the topology (a slot resharded, a primary killed) come last.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from benchmarks.redis_topologies import LocalCluster
from gateway_worker.config import Config
from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.cluster.client import ClusterClient
from gateway_worker.redis.cluster.slots import key_slot
from tests.helpers import wait_until
from tests.integration.conftest_gateway import running_gateway

pytestmark = pytest.mark.integration


def cluster_config(seeds: list[str], **redis_settings: Any) -> Config:
    return Config.model_validate(
        {
            "redis": {
                "mode": "cluster",
                "nodes": seeds,
                "connection_timeout_seconds": 1.0,
                "health_check_interval_seconds": 0.5,
                **redis_settings,
            },
            "policy": {"denied_commands": []},  # FLUSHDB, KEYS, SCRIPT, EVAL are tested
            "observability": {"metrics": {"enabled": False}},
        }
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster() as topology:
        yield topology


@pytest.fixture(scope="module")
def gateway(cluster: LocalCluster) -> Iterator[str]:
    # One seed node only: the rest of the cluster is discovered.
    with running_gateway(cluster_config(cluster.seeds[:1])) as base:
        yield base


def primaries(cluster: LocalCluster) -> list[redis.Redis]:
    return [cluster.server(port).client() for port in cluster.primary_ports()]


@pytest.fixture
def http(gateway: str, cluster: LocalCluster) -> Iterator[httpx.Client]:
    for node in primaries(cluster):
        node.flushall()
        node.close()
    with httpx.Client(base_url=gateway, timeout=10) as client:
        yield client


def results(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    return [item.get("result", item.get("error")) for item in response.json()]


def test_thousand_keys_land_on_every_primary(http: httpx.Client, cluster: LocalCluster) -> None:
    sets = [["SET", f"key:{i}", str(i)] for i in range(1000)]
    assert results(http.post("/pipeline", json=sets)) == ["OK"] * 1000
    per_node = [node.dbsize() for node in primaries(cluster)]
    assert len(per_node) == 3 and all(n > 200 for n in per_node), per_node
    assert sum(per_node) == 1000
    assert http.get("/dbsize").json() == {"result": 1000}  # fanned out and summed
    assert http.get("/get/key:777").json() == {"result": "777"}


def test_mget_mset_del_across_slots(http: httpx.Client) -> None:
    keys = ["a", "b", "c", "d", "e", "f"]
    assert len({key_slot(k.encode()) for k in keys}) == 6
    mset = ["MSET", *(x for k in keys for x in (k, k.upper()))]
    assert http.post("/", json=mset).json() == {"result": "OK"}
    got = http.post("/", json=["MGET", "f", "a", "missing", "c", "a"]).json()
    assert got == {"result": ["F", "A", None, "C", "A"]}
    assert http.post("/", json=["EXISTS", "a", "b", "missing", "a"]).json() == {"result": 3}
    assert http.post("/", json=["TOUCH", "a", "b", "c"]).json() == {"result": 3}
    assert http.post("/", json=["DEL", "a", "b", "missing"]).json() == {"result": 2}
    assert http.post("/", json=["UNLINK", "c", "d", "e", "f"]).json() == {"result": 4}
    assert http.get("/dbsize").json() == {"result": 0}
    # Webdis too: the same routing behind the other protocol.
    assert http.get("/webdis/MSET/x/1/y/2").status_code == 200
    assert http.get("/webdis/MGET/y/x").json() == {"MGET": ["2", "1"]}


def test_other_multi_key_commands_across_slots_say_to_use_a_hash_tag(http: httpx.Client) -> None:
    r = http.post("/", json=["SINTER", "a", "b"])
    assert r.status_code == 400
    error = r.json()["error"]
    assert error.startswith("CROSSSLOT") and "hash tag" in error and "SINTER" in error
    # With a hash tag the keys share a slot, and it runs.
    http.post("/", json=["SADD", "{u1}:a", "x", "y"])
    http.post("/", json=["SADD", "{u1}:b", "y"])
    assert http.post("/", json=["SINTER", "{u1}:a", "{u1}:b"]).json() == {"result": ["y"]}


def test_pipeline_across_slots_in_request_order(http: httpx.Client) -> None:
    pipeline = [
        ["SET", "a", "1"],
        ["INCR", "a"],
        ["SET", "b", "10"],
        ["INFO"],  # refused in cluster mode: an error in its place, the rest runs
        ["MGET", "a", "b", "c"],
        ["INCRBY", "b", "5"],
        ["GET", "b"],
        ["DBSIZE"],
        ["DEL", "a", "b"],
    ]
    out = results(http.post("/pipeline", json=pipeline))
    assert out[:4] == ["OK", 2, "OK", out[3]]
    assert "INFO is not available" in out[3] and "describes one node" in out[3]
    assert out[4:] == [["2", "10", None], 15, "15", 2, 2]


def test_transaction_needs_one_slot_and_runs_nothing_otherwise(
    http: httpx.Client, cluster: LocalCluster
) -> None:
    ok = http.post("/multi-exec", json=[["SET", "{cart}:a", "1"], ["INCR", "{cart}:a"]])
    assert results(ok) == ["OK", 2]
    r = http.post("/multi-exec", json=[["SET", "a", "1"], ["SET", "b", "2"]])
    assert r.status_code == 400
    assert r.json()["error"].startswith("CROSSSLOT") and "nothing was run" in r.json()["error"]
    assert http.post("/", json=["EXISTS", "a", "b"]).json() == {"result": 0}


def test_fan_out_scan_scripts_and_refusals(http: httpx.Client) -> None:
    http.post("/pipeline", json=[["SET", f"s:{i}", "v"] for i in range(300)])
    keys: set[str] = set()
    cursor = "0"
    for _ in range(1000):
        cursor, batch = http.post("/", json=["SCAN", cursor, "COUNT", "50"]).json()["result"]
        keys.update(batch)
        if cursor == "0":
            break
    assert keys == {f"s:{i}" for i in range(300)}
    assert sorted(http.post("/", json=["KEYS", "s:1?"]).json()["result"]) == [
        f"s:{i}" for i in range(10, 20)
    ]
    bad = http.post("/", json=["SCAN", "12345678"])
    assert bad.status_code == 400 and "invalid cursor" in bad.json()["error"]
    # SCRIPT LOAD reaches every primary, so EVALSHA works whatever node a key is on.
    sha = http.post("/", json=["SCRIPT", "LOAD", "return redis.call('GET', KEYS[1])"]).json()
    for key in ("s:1", "s:2", "s:3", "s:4"):
        reply = http.post("/", json=["EVALSHA", sha["result"], "1", key]).json()
        assert reply == {"result": "v"}
    exists = http.post("/", json=["SCRIPT", "EXISTS", sha["result"], "0" * 40]).json()
    assert exists == {"result": [1, 0]}
    for command, why in [
        (["CONFIG", "GET", "maxmemory"], "acts on one node"),
        (["WAIT", "1", "0"], "connections are shared"),
        (["SCRIPT", "KILL"], "only LOAD, FLUSH, EXISTS are routed"),
        (["MOVE", "k", "1"], "only database 0"),
    ]:
        r = http.post("/", json=command)
        assert r.status_code == 400 and why in r.json()["error"], (command, r.text)
    assert "only database 0" in http.get("/webdis/1/GET/k").text  # Webdis /DB/ prefix
    assert http.post("/", json=["FLUSHALL"]).json() == {"result": "OK"}
    assert http.get("/dbsize").json() == {"result": 0}


def test_the_rate_limit_is_kept_on_the_cluster(cluster: LocalCluster) -> None:
    """The limiter's script goes to the node of its key (``execute_own``)."""
    config = cluster_config(cluster.seeds[:1])
    limits = {"enabled": True, "requests_per_minute": 6, "burst_size": 5}
    auth = config.auth.model_copy(
        update={"rate_limiting": config.auth.rate_limiting.model_copy(update=limits)}
    )
    with (
        running_gateway(config.model_copy(update={"auth": auth})) as base,
        httpx.Client(base_url=base) as client,
    ):
        statuses = [client.get("/get/rl:anything").status_code for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3
    key = b"rgw:rl:ip:127.0.0.1"
    with redis.Redis(port=cluster.primary_port_for(key)) as owner:
        assert owner.exists(key) == 1  # on the node that owns its slot


def test_blocking_command_waits_on_a_connection_of_its_own(
    http: httpx.Client, gateway: str, cluster: LocalCluster
) -> None:
    node = cluster.server(cluster.primary_port_for(b"{jobs}")).client()
    popped: list[httpx.Response] = []

    def pop() -> None:
        with httpx.Client(base_url=gateway, timeout=10) as client:
            popped.append(client.get("/blpop/{jobs}/5"))

    waiter = threading.Thread(target=pop)
    waiter.start()
    try:
        wait_until(lambda: node.info("clients")["blocked_clients"] == 1, what="BLPOP waiting")
        # The node's shared connection is not held by the BLPOP: other requests flow.
        assert http.get("/get/{jobs}:other").json() == {"result": None}
        assert http.post("/", json=["LPUSH", "{jobs}", "job-1"]).json() == {"result": 1}
    finally:
        waiter.join(10)
        node.close()
    assert popped and popped[0].json() == {"result": ["{jobs}", "job-1"]}


def _kill_subscribers(cluster: LocalCluster) -> None:
    for node in primaries(cluster):
        node.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # type: ignore[no-untyped-call]
        node.close()


@pytest.mark.parametrize(
    ("command", "publish", "kind"),
    [("SUBSCRIBE", "PUBLISH", "message"), ("SSUBSCRIBE", "SPUBLISH", "smessage")],
)
def test_pubsub_streams_through_the_cluster(
    gateway: str, cluster: LocalCluster, command: str, publish: str, kind: str
) -> None:
    channel = "news-" + kind
    # Published on the node that owns the channel's slot (SPUBLISH must be there; a
    # SUBSCRIBE on any node gets a PUBLISH made anywhere).
    owner = cluster.server(cluster.primary_port_for(channel.encode())).client()
    received = bytearray()
    try:
        with (
            httpx.Client(base_url=gateway, timeout=10) as http,
            http.stream("GET", f"/webdis/{command}/{channel}") as r,
        ):
            chunks = r.iter_raw()
            received += next(chunks)
            assert received.startswith(f'{{"{command}":["{command.lower()}"'.encode()), received
            assert owner.execute_command(publish, channel, "hello") == 1  # type: ignore[no-untyped-call]
            expected = f'["{kind}","{channel}","hello"]}}'.encode()
            while not received.endswith(expected):
                received += next(chunks)
    finally:
        owner.close()
        _kill_subscribers(cluster)


@pytest.fixture
def slow_refresh(cluster: LocalCluster) -> Iterator[httpx.Client]:
    """A gateway that re-reads the slot map only every 60 s: a MOVED is then the only
    way it can learn of a moved slot (the module's gateway re-reads it every 0.5 s,
    which could beat the request to it)."""
    config = cluster_config(cluster.seeds[:1], health_check_interval_seconds=60.0)
    with running_gateway(config) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield client


def test_ask_during_a_resharding_and_moved_after_it(
    http: httpx.Client, slow_refresh: httpx.Client, cluster: LocalCluster
) -> None:
    http = slow_refresh  # ``http`` flushed the nodes
    assert http.post("/", json=["MSET", "{mv}gone", "1", "{mv}stays", "2"]).json() == {
        "result": "OK"
    }
    slot = key_slot(b"{mv}")
    source = cluster.owner_of_slot(slot)
    target = next(p for p in cluster.primary_ports() if p != source)
    src, dst = cluster.server(source).client(), cluster.server(target).client()
    try:
        cluster.begin_migration(slot, target, keys=[b"{mv}gone"])
        asking = _calls(dst, "asking")
        # The source still owns the slot but lost that key: ASK, then ASKING + GET there.
        assert http.get("/get/{mv}gone").json() == {"result": "1"}
        assert _calls(dst, "asking") == asking + 1
        assert http.get("/get/{mv}stays").json() == {"result": "2"}  # still at the source
        cluster.move_slot(slot, target)  # the rest of the slot, and the new owner
        rejected = _calls(src, "get", "rejected_calls")
        # The gateway's map still names the old owner: it gets MOVED and follows it.
        assert http.get("/get/{mv}stays").json() == {"result": "2"}
        assert _calls(src, "get", "rejected_calls") == rejected + 1
        assert http.get("/set/{mv}stays/3").json() == {"result": "OK"}
        assert dst.get("{mv}stays") == b"3"
        assert http.get("/get/{mv}stays").json() == {"result": "3"}
        assert _calls(src, "get", "rejected_calls") == rejected + 1  # the map learnt it
    finally:
        src.close()
        dst.close()


def _calls(node: redis.Redis, command: str, field: str = "calls") -> int:
    stats = node.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get(field, 0))


def test_a_primary_killed_under_load_fails_over(
    http: httpx.Client, cluster: LocalCluster, gateway: str
) -> None:
    victim = cluster.primary_port_for(b"load:0")
    keys = [f"load:{i}" for i in range(40)]
    on_victim = [k for k in keys if cluster.primary_port_for(k.encode()) == victim]
    assert on_victim
    log: list[tuple[float, int]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=gateway, timeout=10) as client:
            i = 0
            while not stop.is_set():
                key = on_victim[i % len(on_victim)]
                status = client.get(f"/set/{key}/{i}").status_code
                log.append((time.monotonic(), status))
                i += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        wait_until(lambda: len(log) > 20, what="load running")
        killed = time.monotonic()
        cluster.kill(victim)
        wait_until(
            lambda: (
                any(t > killed and s != 200 for t, s in log)
                and log[-1][1] == 200
                and log[-1][0] > killed
            ),
            timeout=20,
            what="requests succeeding again after the failover",
        )
    finally:
        stop.set()
        worker.join(10)
    after = [(t - killed, s) for t, s in log if t > killed]
    failed = [t for t, s in after if s != 200]
    assert {s for _, s in after} <= {200, 503}, {s for _, s in after}
    window = max(failed) if failed else 0.0
    print(
        f"\ncluster failover: requests to the killed primary's slots failed (503) for {window:.2f}s"
    )
    assert window < 15
    assert all(http.get(f"/get/{k}").status_code == 200 for k in on_victim)
    assert http.get("/readyz").status_code == 200


def test_ready_only_while_every_slot_is_served() -> None:
    with LocalCluster(primaries=1, replicas=0) as single:
        node = single.primaries[0].client()
        config = cluster_config(single.seeds)
        with running_gateway(config) as base, httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/readyz").status_code == 200
            node.execute_command("CLUSTER", "DELSLOTS", 16383)  # type: ignore[no-untyped-call]
            r = wait_until(
                lambda: (r := http.get("/readyz")).status_code == 503 and r,
                what="/readyz 503",
            )
            assert "covers 16383 of 16384 slots (no online primary for 16383)" in r.text
            # A worker booting now would not start (the supervisor reports why).
            with pytest.raises(RedisUnavailable, match="covers 16383 of 16384"):
                asyncio.run(_boot(ClusterClient(config.redis)))
            node.execute_command("CLUSTER", "ADDSLOTS", 16383)  # type: ignore[no-untyped-call]
            wait_until(lambda: http.get("/readyz").status_code == 200, what="/readyz 200")
        node.close()


async def _boot(client: ClusterClient) -> None:
    try:
        await client.start()
    finally:
        await client.close()
