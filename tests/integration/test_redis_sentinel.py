"""Sentinel mode against real servers: a master, a replica and 3 Sentinels on 127.0.0.1
(``benchmarks.redis_topologies.LocalSentinels``, one per module), behind a real gateway
app served by uvicorn (docs/redis-topologies.md).

The failover test leaves a new master behind: the tests ask the Sentinels who the
master is instead of assuming it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from benchmarks.redis_topologies import LocalSentinels
from gateway_worker.config import Config, RedisConfig
from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.sentinel.client import SentinelClient
from gateway_worker.redis.values import Status
from tests.helpers import free_port, wait_until
from tests.integration.conftest_gateway import running_gateway

pytestmark = pytest.mark.integration


def sentinel_settings(topology: LocalSentinels, **more: Any) -> dict[str, Any]:
    return {
        "mode": "sentinel",
        # A Sentinel that is down comes first: the others are asked in turn.
        "nodes": [f"127.0.0.1:{free_port()}", *topology.sentinel_nodes],
        "sentinel_master": topology.name,
        "connection_timeout_seconds": 1.0,
        "health_check_interval_seconds": 0.5,
        **more,
    }


@pytest.fixture(scope="module")
def sentinels() -> Iterator[LocalSentinels]:
    with LocalSentinels() as topology:
        yield topology


@pytest.fixture(scope="module")
def gateway(sentinels: LocalSentinels) -> Iterator[str]:
    config = Config.model_validate(
        {
            "redis": sentinel_settings(sentinels),
            "observability": {"metrics": {"enabled": False}},
        }
    )
    with running_gateway(config) as base:
        yield base


def test_reads_and_writes_reach_the_master(gateway: str, sentinels: LocalSentinels) -> None:
    with httpx.Client(base_url=gateway, timeout=10) as http:
        assert http.get("/set/greeting/hello").json() == {"result": "OK"}
        assert http.get("/get/greeting").json() == {"result": "hello"}
        assert http.get("/webdis/GET/greeting").json() == {"GET": "hello"}
        assert http.get("/readyz").status_code == 200
    with sentinels.server(sentinels.master_port()).client() as master:
        assert master.get("greeting") == b"hello"


def test_a_readonly_reply_fails_the_write_and_the_master_is_verified_again(
    sentinels: LocalSentinels,
) -> None:
    """The master turned replica behind the Sentinels' back (roles swapped by hand, no
    failover announced) answers writes with READONLY: the write fails with 503 (nothing
    written), and the client asks the Sentinels again, refusing their stale answer until
    the node it names says ``master`` to ROLE."""
    sentinels.wait_replicated()
    cfg = RedisConfig.model_validate(sentinel_settings(sentinels, max_retries=0))
    master = sentinels.server(sentinels.master_port())
    replica = sentinels.replica if master is sentinels.master else sentinels.master

    def swap(new_master: int, new_replica: int) -> None:
        with sentinels.server(new_master).client() as c:
            c.execute_command("REPLICAOF", "NO", "ONE")
        with sentinels.server(new_replica).client() as c:
            c.execute_command("REPLICAOF", "127.0.0.1", new_master)

    async def scenario() -> tuple[str, str, Any, int]:
        client = SentinelClient(cfg)
        await client.start()
        try:
            swap(replica.port, master.port)
            with pytest.raises(RedisUnavailable) as refused:
                await client.execute([b"SET", b"k", b"v"])
            deadline = time.monotonic() + 10
            while "answers ROLE with 'slave'" not in client.unready_reason():
                assert time.monotonic() < deadline, client.unready_reason()
                await asyncio.sleep(0.02)
            searching = client.unready_reason()
            swap(master.port, replica.port)
            while True:
                try:
                    reply = await client.execute([b"SET", b"k", b"v"])
                    break
                except RedisUnavailable:
                    assert time.monotonic() < deadline + 10, client.unready_reason()
                    await asyncio.sleep(0.05)
            return str(refused.value), searching, reply, client.inner.options.port
        finally:
            await client.close()

    error, searching, reply, port = asyncio.run(scenario())
    assert "READONLY" in error and "nothing was written" in error
    assert "looking for the master" in searching
    assert reply == Status(b"OK") and port == master.port == sentinels.master_port()
    with master.client() as c:
        assert c.get("k") == b"v"


def test_a_master_killed_under_load_fails_over(gateway: str, sentinels: LocalSentinels) -> None:
    sentinels.wait_replicated()
    log: list[tuple[float, int, Any]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=gateway, timeout=10) as client:
            while not stop.is_set():
                r = client.get("/incr/counter")
                log.append((time.monotonic(), r.status_code, r.json()))

    worker = threading.Thread(target=load)
    worker.start()
    try:
        wait_until(lambda: len(log) > 20, what="load running")
        killed = time.monotonic()
        sentinels.kill(sentinels.master_port())
        wait_until(
            lambda: (
                any(t > killed and s != 200 for t, s, _ in log)
                and log[-1][1] == 200
                and log[-1][0] > killed
            ),
            timeout=20,
            what="requests succeeding again after the failover",
        )
    finally:
        stop.set()
        worker.join(10)
    after = [(t - killed, s) for t, s, _ in log if t > killed]
    assert {s for _, s in after} <= {200, 503}, {s for _, s in after}
    window = max((t for t, s in after if s != 200), default=0.0)
    print(f"\nsentinel failover: requests failed (503) for {window:.2f}s")
    assert window < 15
    # The counter kept counting on the new master (a replica of the old one).
    counts = [body["result"] for _, s, body in log if s == 200]
    assert counts == sorted(counts)
    with httpx.Client(base_url=gateway, timeout=10) as http:
        assert http.get("/readyz").status_code == 200
