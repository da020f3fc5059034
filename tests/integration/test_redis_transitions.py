"""Every change of Redis availability is logged when a request notices it, not only
when the health task (every ``redis.health_check_interval_seconds``) does (issue 8,
item 11). A real Redis of the test's own, stopped and started again on its port."""

from __future__ import annotations

import asyncio

import pytest
import structlog.testing

from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.client import RedisClient
from gateway_worker.redis.values import Status
from supervisor.embedded_redis import EmbeddedRedis
from tests.integration.conftest_gateway import make_config


def test_an_outage_shorter_than_the_health_interval_is_logged_both_ways() -> None:
    redis = EmbeddedRedis()
    redis.start()
    revived: EmbeddedRedis | None = None
    cfg = make_config(
        redis.url,
        redis={
            "health_check_interval_seconds": 3600.0,  # the health task never runs here
            "max_retries": 0,
            "connection_timeout_seconds": 1.0,
        },
    ).redis

    async def scenario() -> list[tuple[str, bool | None]]:
        nonlocal revived
        client = RedisClient(cfg)
        await client.start()
        try:
            with structlog.testing.capture_logs() as logs:
                redis.stop()
                with pytest.raises(RedisUnavailable):
                    await client.execute([b"GET", b"k"])
                with pytest.raises(RedisUnavailable):
                    await client.execute([b"GET", b"k"])  # still down: not logged again
                revived = EmbeddedRedis(port=redis.port)
                revived.start()
                assert await client.execute([b"PING"]) == Status(b"PONG")
                assert await client.execute([b"PING"]) == Status(b"PONG")
        finally:
            await client.close()
        return [(e["event"], e.get("healthy")) for e in logs if e["event"].startswith("redis.")]

    try:
        events = asyncio.run(scenario())
    finally:
        for server in (redis, revived):
            if server is not None:
                server.stop()
    assert events == [("redis.health", False), ("redis.health", True)]
