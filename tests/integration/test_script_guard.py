"""The script guard against a real valkey, through a real `redis-gateway run`.

Each test has a Redis of its own (a script that cannot be killed ends only with the
server), with ``busy-reply-threshold`` lowered to 100 ms: Redis reads SCRIPT KILL only
once a script has run that long (5 s by default), which would make each test slow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from supervisor.embedded_redis import EmbeddedRedis
from tests.helpers import wait_until
from tests.integration.conftest import Gateway

pytestmark = pytest.mark.integration

ALL_KEY = "all-key-0123456789abcdef"  # policy "all": may run scripts
DEFAULT_KEY = "default-key-0123456789ab"  # the default policy, all_but_dangerous
SPIN = "while true do end"


@pytest.fixture
def private_redis() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis()
    server.start()
    with redis.Redis(port=server.port) as client:
        client.config_set("busy-reply-threshold", 100)
    yield server
    server.stop(timeout=0.5)  # a busy Redis ignores SIGTERM: SIGKILL then


def start(
    gateway_factory: Callable[..., Gateway], private: EmbeddedRedis, **over: Any
) -> tuple[Gateway, httpx.Client]:
    config: dict[str, Any] = {
        "server": {"workers": 1, **over.pop("server", {})},
        "redis": {"url": private.url, "command_timeout_seconds": 0.5, **over.pop("redis", {})},
        "auth": {
            "enabled": True,
            "api_keys": [
                {"name": "all", "key": ALL_KEY, "policy": "all"},
                {"name": "default", "key": DEFAULT_KEY},
            ],
        },
    }
    gw = gateway_factory(config)
    return gw, httpx.Client(
        base_url=f"http://127.0.0.1:{gw.port}",
        headers={"authorization": f"Bearer {ALL_KEY}"},
        timeout=15,
    )


def ready_within(http: httpx.Client, seconds: float) -> None:
    wait_until(lambda: http.get("/readyz").status_code == 200, timeout=seconds, what="/readyz 200")


def test_a_runaway_script_is_killed_and_redis_serves_again_at_once(
    gateway_factory: Callable[..., Gateway], private_redis: EmbeddedRedis
) -> None:
    _, http = start(gateway_factory, private_redis)
    with http:
        refused = http.post(
            "/", json=["EVAL", SPIN, "0"], headers={"authorization": f"Bearer {DEFAULT_KEY}"}
        )
        assert refused.status_code == 403 and "policy.denied_commands" in refused.json()["error"]

        started = time.monotonic()
        r = http.post("/", json=["EVAL", SPIN, "0"])
        answered = time.monotonic()
        assert r.status_code == 504, r.text
        error = r.json()["error"]
        assert "EVAL ran past redis.command_timeout_seconds=0.5" in error
        assert "stopped it with SCRIPT KILL" in error
        assert answered - started < 3.0
        assert http.post("/", json=["SET", "k", "v"]).json() == {"result": "OK"}
        assert http.get("/get/k").json() == {"result": "v"}
        ready_within(http, 1.0)

        with redis.Redis(port=private_redis.port) as direct:
            direct.function_load(
                "#!lua name=lib\nredis.register_function('spin', function() while true do end end)"
            )
        r = http.post("/", json=["FCALL", "spin", "0"])
        assert r.status_code == 504 and "stopped it with FUNCTION KILL" in r.json()["error"]
        assert http.get("/get/k").json() == {"result": "v"}
        ready_within(http, 1.0)


def test_a_script_inside_a_pipeline_and_a_transaction_is_guarded_too(
    gateway_factory: Callable[..., Gateway], private_redis: EmbeddedRedis
) -> None:
    _, http = start(gateway_factory, private_redis)
    with http:
        r = http.post("/pipeline", json=[["SET", "a", "1"], ["EVAL", SPIN, "0"]])
        assert r.status_code == 504 and "SCRIPT KILL" in r.json()["error"]
        # In a transaction the other commands ran: the script's entry says it was killed.
        r = http.post("/multi-exec", json=[["SET", "b", "2"], ["EVAL", SPIN, "0"]])
        assert r.status_code == 200, r.text
        first, second = r.json()
        assert first == {"result": "OK"} and "killed" in second["error"].lower()
        assert http.get("/mget/a/b").json() == {"result": ["1", "2"]}
        ready_within(http, 1.0)


def test_a_request_deadline_shorter_than_the_script_timeout_still_kills_the_script(
    gateway_factory: Callable[..., Gateway], private_redis: EmbeddedRedis
) -> None:
    _, http = start(
        gateway_factory,
        private_redis,
        server={"request_timeout_seconds": 0.2},
        redis={"command_timeout_seconds": 0.6},
    )
    with http:
        r = http.post("/", json=["EVAL", SPIN, "0"])
        assert r.status_code == 504 and "request_timeout_seconds" in r.json()["error"]
        assert http.get("/set/k/v").json() == {"result": "OK"}
        ready_within(http, 1.0)


def test_an_unkillable_script_is_reported_by_the_504_the_log_and_readyz(
    gateway_factory: Callable[..., Gateway], private_redis: EmbeddedRedis
) -> None:
    writer = "redis.call('SET', KEYS[1], 'x') while true do end"
    gw, http = start(gateway_factory, private_redis)
    with http:
        r = http.post("/", json=["EVAL", writer, "1", "w"])
        assert r.status_code == 504
        error = r.json()["error"]
        assert "SCRIPT KILL was refused" in error and "UNKILLABLE" in error
        assert "SHUTDOWN NOSAVE" in error
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert "UNKILLABLE" in ready.json()["error"] and "busy" in ready.json()["error"]
        unkillable = [line for line in gw.logs().splitlines() if "redis.script_unkillable" in line]
        assert unkillable and '"error"' in unkillable[0], gw.logs()[-2000:]
