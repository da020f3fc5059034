"""Redis going away: 503 JSON errors (never a hang), /readyz 503, recovery by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from supervisor.embedded_redis import EmbeddedRedis
from tests.helpers import wait_until
from tests.integration.conftest_gateway import make_config, running_gateway

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_redis_down_then_back(own_redis: EmbeddedRedis) -> None:
    config = make_config(
        own_redis.url,
        redis={
            "max_retries": 1,
            "retry_delay_ms": 50,
            "connection_timeout_seconds": 1.0,
            "command_timeout_seconds": 1.0,
            "health_check_interval_seconds": 0.2,
        },
    )
    port = own_redis.port
    with running_gateway(config) as base, httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/set/k/v").json() == {"result": "OK"}
        own_redis.stop()

        started = time.monotonic()
        r = http.get("/get/k")
        assert r.status_code == 503
        assert r.json()["error"].startswith("Redis unavailable: ")
        assert f"127.0.0.1:{port}" in r.json()["error"]
        r = http.post("/pipeline", content=b'[["GET","k"]]')
        assert r.status_code == 503
        assert r.json()["error"].startswith("Redis unavailable: ")
        r = http.get("/webdis/GET/k")
        assert r.status_code == 503
        assert time.monotonic() - started < 5  # failed fast, no hang

        r = http.get("/readyz")
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable"
        assert http.get("/healthz").status_code == 200  # liveness is not readiness

        back = EmbeddedRedis(port=port)
        back.start()
        try:
            wait_until(lambda: http.get("/readyz").status_code == 200, what="/readyz 200")
            assert http.get("/set/k/again").json() == {"result": "OK"}
            assert http.get("/get/k").json() == {"result": "again"}
        finally:
            back.stop()
