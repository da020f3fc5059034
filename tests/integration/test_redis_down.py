"""Redis going away: 503 JSON errors (never a hang), /readyz 503, recovery by itself."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

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


def test_a_redis_loading_its_dataset_is_503_not_400() -> None:
    """Restarted, Redis answers -LOADING to every command until its dataset is in memory:
    the gateway said 400, as if the request were wrong (found by the fault suite's Redis
    restart: clients such as the Upstash SDK do not retry a 400)."""
    # key-load-delay (µs per key, a test knob of Redis and valkey): 20,000 SETs in the AOF
    # load in ~4 s, and clients are answered (-LOADING) every 1,024 of them.
    server = EmbeddedRedis(extra_args=("--appendonly", "yes", "--key-load-delay", "200"))
    server.start()
    try:
        with redis.Redis(port=server.port).pipeline(transaction=False) as fill:
            for i in range(20_000):
                fill.set(f"fill:{i}", "x")
            fill.execute()
        config = make_config(server.url, redis={"max_retries": 1, "retry_delay_ms": 50})
        with running_gateway(config) as base, httpx.Client(base_url=base, timeout=10) as http:
            server.stop(keep_data=True)
            # spawn(), not start() in a thread: the server dies with the thread that
            # started it (its parent-death signal), and start() waits out the loading.
            server.spawn()
            wait_until(lambda: _answers(server.port, b"-LOADING"), what="Redis loading")
            for path in ("/incr/n", "/get/n", "/webdis/INCR/n"):
                r = http.get(path)
                assert r.status_code == 503, (path, r.text)
                assert "LOADING" in r.text and "Redis unavailable" in r.text, r.text
            r = http.post("/pipeline", content=b'[["GET","n"],["INCR","n"]]')
            assert r.status_code == 503, r.text
            wait_until(server.ping, timeout=30, what="dataset loaded")
            wait_until(lambda: http.get("/incr/n").status_code == 200, what="served again")
    finally:
        server.stop()


def _answers(port: int, prefix: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(prefix)
    except OSError:
        return False
