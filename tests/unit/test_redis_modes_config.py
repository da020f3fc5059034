"""`redis.mode` and its keys: each mixed config refused with a message naming the keys,
node addresses checked, secrets hidden, and the supervisor's rules about the embedded
Redis following the mode (docs/redis-topologies.md)."""

from __future__ import annotations

import pytest

from gateway_worker.config import Config, RedisConfig, dump_redacted
from gateway_worker.config.redis_connection import split_node
from supervisor.config import ConfigError, ConfigInputs, load_config
from supervisor.workers.setup import wants_embedded_redis

MIXED = [
    (
        ["redis.mode=cluster", "redis.url=redis://r:1", 'redis.nodes=["n:1"]'],
        'redis.url and redis.mode = "cluster" do not mix',
    ),
    (['redis.nodes=["n:1"]'], 'redis.nodes is set but redis.mode is "standalone"'),
    (["redis.mode=cluster"], 'redis.mode = "cluster" needs redis.nodes (seed nodes'),
    (["redis.mode=sentinel", 'redis.nodes=["s:1"]'], "needs redis.sentinel_master"),
    (
        ["redis.mode=sentinel", "redis.url=redis://r:1", 'redis.nodes=["s:1"]'],
        'redis.url and redis.mode = "sentinel" do not mix',
    ),
    (["redis.mode=cluster", 'redis.nodes=["n:1"]', "redis.db=3"], "only database 0"),
    (
        ["redis.mode=cluster", 'redis.nodes=["n:1"]', "redis.sentinel_master=m"],
        'redis.sentinel_master set, but only used when redis.mode = "sentinel"',
    ),
    (["redis.tls.enabled=true"], "a standalone Redis turns TLS on with a rediss://"),
    (["redis.mode=cluster", 'redis.nodes=["n"]'], "'n' is not host:port"),
    (["redis.mode=cluster", 'redis.nodes=["::1:7000"]'], "IPv6 address goes in brackets"),
    (["redis.mode=cluster", 'redis.nodes=["n:0"]'], "invalid port"),
    (["redis.mode=cluster", 'redis.nodes=["bad_host!:1"]'], "neither an IP address"),
    (["redis.mode=replicas"], "redis.mode"),
]


def problems(*overrides: str, profile: str = "dev") -> list[str]:
    try:
        load_config(ConfigInputs(profile=profile, overrides=overrides, env={}))
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    return []


@pytest.mark.parametrize(("overrides", "fragment"), MIXED)
def test_configs_that_do_not_fit_the_mode_are_refused(overrides: list[str], fragment: str) -> None:
    found = problems(*overrides)
    assert len(found) == 1 and fragment in found[0], found


def test_every_problem_of_a_mixed_config_is_named_at_once() -> None:
    (found,) = problems("redis.mode=cluster", "redis.url=redis://r:1", "redis.db=2")
    assert "remove redis.url" in found and "needs redis.nodes" in found
    assert "only database 0" in found


def test_valid_modes_load() -> None:
    assert problems("redis.mode=cluster", 'redis.nodes=["10.0.0.1:7000", "[::1]:7001"]') == []
    assert (
        problems(
            "redis.mode=sentinel",
            'redis.nodes=["s1:26379","s2:26379"]',
            "redis.sentinel_master=mymaster",
            "redis.sentinel_password=sentinel-pw",
            "redis.tls.enabled=true",
        )
        == []
    )


def test_nodes_from_the_environment_are_json() -> None:
    env = {"REDIS_GATEWAY_REDIS__MODE": "cluster", "REDIS_GATEWAY_REDIS__NODES": '["n1:7000"]'}
    loaded = load_config(ConfigInputs(env=env))
    assert loaded.config.redis.nodes == ["n1:7000"]


def test_split_node() -> None:
    assert split_node("10.0.0.1:7000") == ("10.0.0.1", 7000)
    assert split_node("[::1]:7000") == ("::1", 7000)
    assert split_node("redis-0.redis.svc:6379") == ("redis-0.redis.svc", 6379)


def test_sentinel_password_is_a_secret_never_shown() -> None:
    found = problems(
        "redis.mode=cluster", 'redis.nodes=["n:1"]', "redis.sentinel_password=hunter2-secret"
    )
    assert found and all("hunter2" not in p for p in found)
    cfg = Config(
        redis=RedisConfig(
            mode="sentinel",
            nodes=["s:1"],
            sentinel_master="m",
            sentinel_password="hunter2-secret",
        )
    )
    assert "hunter2" not in str(dump_redacted(cfg))


def test_cluster_and_sentinel_modes_need_no_redis_url_in_strict_profiles() -> None:
    strict = ("auth.enabled=true", f"auth.jwt_secret={'x' * 32}")
    assert problems(*strict, "redis.mode=cluster", 'redis.nodes=["n:1"]', profile="prod") == []
    found = problems(*strict, profile="staging")
    assert len(found) == 1 and found[0].startswith("redis.url: must be set explicitly")


def test_no_embedded_redis_for_a_cluster_or_a_sentinel_master() -> None:
    assert wants_embedded_redis(Config())
    cluster = Config(redis=RedisConfig(mode="cluster", nodes=["n:1"]))
    sentinel = Config(redis=RedisConfig(mode="sentinel", nodes=["s:1"], sentinel_master="m"))
    assert not wants_embedded_redis(cluster)
    assert not wants_embedded_redis(sentinel)
