"""A change of ``redis.mode`` or ``redis.nodes`` is a normal reload, through a real
``redis-gateway run``: the new generation connects to the new topology, or the reload
fails readiness and the old generation keeps serving (docs/redis-topologies.md)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import tomli_w

from benchmarks.redis_topologies import LocalCluster
from tests.helpers import free_port
from tests.integration.conftest import Gateway

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(replicas=0) as topology:
        yield topology


def redis_section(gw: Gateway, **redis_settings: Any) -> None:
    """Rewrite the config file with ``[redis]`` replaced (``redis.url`` dropped)."""
    config = copy.deepcopy(gw.config)
    config["redis"] = {"connection_timeout_seconds": 1.0, **redis_settings}
    gw.write_config(raw=tomli_w.dumps(config))


def test_reload_into_a_cluster_out_of_it_and_to_an_unreachable_one(
    gateway_factory: Callable[..., Gateway],
    cluster: LocalCluster,
    redis_url: str,
    clean_redis: redis.Redis,
) -> None:
    gw = gateway_factory({"server": {"workers": 1}})
    assert gw.get("/set/where/standalone") == (200, {"result": "OK"})

    redis_section(gw, mode="cluster", nodes=cluster.seeds[1:2])
    result = gw.reload()
    assert result.returncode == 0, result.stdout + result.stderr
    assert gw.get("/get/where") == (200, {"result": None})  # another Redis now
    assert gw.get("/set/where/cluster") == (200, {"result": "OK"})
    with cluster.server(cluster.primary_port_for(b"where")).client() as owner:
        assert owner.get("where") == b"cluster"
    assert gw.get("/readyz")[0] == 200

    # Nodes that do not answer: the new generation never gets ready, the old one stays.
    redis_section(gw, mode="cluster", nodes=[f"127.0.0.1:{free_port()}"])
    result = gw.reload()
    assert result.returncode == 1
    assert "reload failed (readiness_failed)" in result.stdout
    assert "no cluster node gave its slot map" in result.stdout
    assert gw.status()["version"] == 2
    assert gw.get("/get/where") == (200, {"result": "cluster"})

    # A cluster node that is not in cluster mode: refused, and said so.
    redis_section(gw, mode="cluster", nodes=[redis_url.removeprefix("redis://")])
    result = gw.reload()
    assert result.returncode == 1 and "needs cluster nodes" in result.stdout, result.stdout

    redis_section(gw, url=redis_url)
    result = gw.reload()
    assert result.returncode == 0, result.stdout + result.stderr
    assert gw.get("/get/where") == (200, {"result": "standalone"})
    assert gw.status()["version"] == 3
