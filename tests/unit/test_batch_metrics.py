"""A pipeline or transaction is counted as `PIPELINE` / `MULTI-EXEC`, not under its
first command, and its size goes to `redis_gateway_batch_commands` (issue 13 §4)."""

from __future__ import annotations

from typing import Any

import httpx
import structlog.testing

from gateway_worker.app import GatewayApp
from tests.unit.test_app_chain import config, run


def test_batches_are_counted_as_such_with_their_command_count(
    redis_url: str, clean_redis: Any
) -> None:
    def sample(app: GatewayApp, name: str, labels: dict[str, str]) -> float:
        return app.metrics.registry.get_sample_value(name, labels) or 0.0

    async def scenario(client: httpx.AsyncClient, app: GatewayApp) -> None:
        app.access_log = True
        app.metrics.flush()
        pipeline = {"protocol": "upstash", "command": "PIPELINE", "status": "200"}
        tx = {"protocol": "upstash", "command": "MULTI-EXEC", "status": "200"}
        first = {"protocol": "upstash", "command": "SET", "status": "200"}
        before = {
            k: sample(app, "redis_gateway_requests_total", v)
            for k, v in (("p", pipeline), ("t", tx), ("s", first))
        }
        with structlog.testing.capture_logs() as logs:
            r = await client.post(
                "/pipeline", json=[["SET", "a", "1"], ["GET", "a"], ["INCR", "a"]]
            )
            assert r.status_code == 200
            r = await client.post("/multi-exec", json=[["SET", "b", "1"], ["INCR", "b"]])
            assert r.status_code == 200
        app.metrics.flush()
        assert sample(app, "redis_gateway_requests_total", pipeline) == before["p"] + 1
        assert sample(app, "redis_gateway_requests_total", tx) == before["t"] + 1
        assert sample(app, "redis_gateway_requests_total", first) == before["s"]
        sizes = "redis_gateway_batch_commands_sum"
        assert sample(app, sizes, {"command": "PIPELINE"}) >= 3
        assert sample(app, sizes, {"command": "MULTI-EXEC"}) >= 2
        access = [(e["command"], e["commands"]) for e in logs if e["event"] == "http.request"]
        assert access == [("PIPELINE", 3), ("MULTI-EXEC", 2)]

    run(config(redis_url), scenario)
