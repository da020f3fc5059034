"""The app's request chain, driven in-process through httpx's ASGI transport against
the session's real Redis: auth, rate limit, admin, CORS, method override, errors,
metrics and the access log."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import structlog.testing

from gateway_worker.app import GatewayApp, build_app
from gateway_worker.asgi import Message
from gateway_worker.config import Config
from gateway_worker.exchange import Request, Response
from gateway_worker.streams.body import StreamBody

ADMIN_KEY = "admin-key-0123456789abcdef"
USER_KEY = "user-key-0123456789abcdef"

Scenario = Callable[[httpx.AsyncClient, GatewayApp], Awaitable[None]]


def config(redis_url: str, **sections: Any) -> Config:
    data: dict[str, Any] = {"redis": {"url": redis_url}}
    data.update(sections)
    return Config.model_validate(data)


def run(cfg: Config, scenario: Scenario) -> None:
    """Start the app, run ``scenario`` with a client bound to it, shut it down."""

    async def main() -> None:
        app = build_app(cfg)
        await app.startup()
        try:
            transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4321))
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                await scenario(client, app)
        finally:
            await app.shutdown()

    asyncio.run(main())


def auth_config(redis_url: str, **extra: Any) -> Config:
    return config(
        redis_url,
        auth={
            "enabled": True,
            "api_keys": [
                {"name": "ops", "key": ADMIN_KEY, "admin": True, "policy": "all"},
                {"name": "app", "key": USER_KEY},
            ],
        },
        features={"admin_endpoints": True},
        **extra,
    )


def test_auth_errors_are_json_401(redis_url: str, clean_redis: Any) -> None:
    async def scenario(client: httpx.AsyncClient, app: GatewayApp) -> None:
        r = await client.get("/get/k")
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/json"
        assert "missing credentials" in r.json()["error"]
        r = await client.get("/get/k", headers={"authorization": "Bearer wrong-token-123456"})
        assert r.status_code == 401
        r = await client.get("/set/k/v", headers={"authorization": f"Bearer {USER_KEY}"})
        assert r.json() == {"result": "OK"}
        r = await client.get("/get/k", params={"_token": USER_KEY})
        assert r.json() == {"result": "v"}

    run(auth_config(redis_url), scenario)


def test_admin_endpoints(redis_url: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: GatewayApp) -> None:
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        r = await client.get("/admin/config", headers={"authorization": f"Bearer {USER_KEY}"})
        assert (r.status_code, r.json()) == (403, {"error": "/admin needs an admin credential"})
        r = await client.get("/admin/config", headers=admin)
        assert r.status_code == 200
        body = r.json()
        assert body["profile"] == "dev"
        assert len(body["hash"]) == 64
        assert body["config"]["redis"]["url"] == redis_url
        assert ADMIN_KEY not in r.text and USER_KEY not in r.text
        assert body["config"]["auth"]["api_keys"][0]["key"] == "**********"
        r = await client.get("/admin/status", headers=admin)
        assert r.status_code == 503
        assert "control socket not available" in r.json()["error"]
        r = await client.get("/admin/reload", headers=admin)
        assert (r.status_code, r.headers["allow"]) == (405, "POST")
        r = await client.get("/admin/nothing", headers=admin)
        assert r.status_code == 404

    run(auth_config(redis_url), scenario)


def test_admin_talks_to_the_control_socket(redis_url: str) -> None:
    sock_dir = tempfile.mkdtemp(prefix="gw-ctl-")
    path = os.path.join(sock_dir, "control.sock")
    seen: list[dict[str, Any]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        command = json.loads(await reader.readline())
        seen.append(command)
        if command["cmd"] == "status":
            reply: dict[str, Any] = {
                "ok": True,
                "status": {
                    "generation": 3,
                    "version": 7,
                    "hash": "supervisor-hash",
                    "provenance": {"server.port": "--set"},
                },
            }
        else:
            reply = {"ok": False, "error": "validation failed: server.port"}
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()
        writer.close()

    async def scenario(client: httpx.AsyncClient, app: GatewayApp) -> None:
        server = await asyncio.start_unix_server(answer, path)
        try:
            admin = {"authorization": f"Bearer {ADMIN_KEY}"}
            r = await client.get("/admin/status", headers=admin)
            assert r.status_code == 200
            assert r.json()["status"]["version"] == 7
            r = await client.post("/admin/reload", headers=admin)
            assert r.status_code == 409
            assert r.json()["error"] == "validation failed: server.port"
            r = await client.get("/admin/config", headers=admin)
            body = r.json()
            assert (body["version"], body["hash"], body["generation"]) == (7, "supervisor-hash", 3)
            assert body["provenance"] == {"server.port": "--set"}
        finally:
            server.close()
            await server.wait_closed()

    try:
        run(auth_config(redis_url, supervisor={"control_socket": path}), scenario)
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(sock_dir)
    assert [c["cmd"] for c in seen] == ["status", "reload", "status"]


def test_rate_limit_429_with_retry_after(redis_url: str, clean_redis: Any) -> None:
    async def scenario(client: httpx.AsyncClient, app: GatewayApp) -> None:
        before = app.metrics.rate_limited._value.get()
        statuses = [(await client.get("/ping")).status_code for _ in range(3)]
        assert statuses[0] == 200
        assert 429 in statuses
        r = await client.get("/ping")
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"].startswith("rate limit exceeded")
        app.metrics.flush()
        assert app.metrics.rate_limited._value.get() > before

    run(
        config(
            redis_url,
            auth={"rate_limiting": {"enabled": True, "requests_per_minute": 1, "burst_size": 1}},
        ),
        scenario,
    )


def test_cors_preflight_and_headers(redis_url: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: GatewayApp) -> None:
        origin = {"origin": "https://app.example.com"}
        r = await client.options(
            "/set/k/v", headers={**origin, "access-control-request-method": "POST"}
        )
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == "https://app.example.com"
        r = await client.get("/ping", headers=origin)
        assert r.json() == {"result": "PONG"}
        assert r.headers["access-control-allow-origin"] == "https://app.example.com"

    run(
        config(
            redis_url,
            server={"cors": {"enabled": True, "allowed_origins": ["https://app.example.com"]}},
        ),
        scenario,
    )


def test_method_override(redis_url: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: GatewayApp) -> None:
        r = await client.post("/get/k", headers={"x-http-method-override": "DELETE"})
        assert r.status_code == 405
        r = await client.get("/get/k", headers={"x-http-method-override": "DELETE"})
        assert r.status_code == 200  # only POST is overridden

    run(config(redis_url, features={"method_override": True}), scenario)


async def _boom(request: Request, redis: Any, guard: Any) -> Response:
    raise RuntimeError("boom with a secret-ish detail")


@pytest.mark.parametrize("debug", [False, True])
def test_internal_errors_hide_tracebacks_unless_debug(redis_url: str, debug: bool) -> None:
    async def scenario(client: httpx.AsyncClient, app: GatewayApp) -> None:
        app.mounts = [("/", "upstash", _boom)]
        r = await client.get("/get/k")
        assert r.status_code == 500
        body = r.json()
        if debug:
            assert "RuntimeError: boom" in body["error"]
            assert any("_boom" in line for line in body["traceback"])
        else:
            assert body == {"error": "internal error (details in the gateway's log)"}

    run(config(redis_url, features={"debug_mode": debug}), scenario)


def sample(app: GatewayApp, name: str, labels: dict[str, str]) -> float:
    value = app.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def test_metrics_and_access_log(redis_url: str, clean_redis: Any) -> None:
    async def scenario(client: httpx.AsyncClient, app: GatewayApp) -> None:
        app.access_log = True
        app.metrics.flush()
        get_ok = {"protocol": "upstash", "command": "GET", "status": "200"}
        other = {"protocol": "upstash", "command": "other", "status": "400"}
        before = sample(app, "redis_gateway_requests_total", get_ok)
        before_other = sample(app, "redis_gateway_requests_total", other)
        count = sample(app, "redis_gateway_request_duration_seconds_count", {"protocol": "upstash"})
        with structlog.testing.capture_logs() as logs:
            await client.get("/get/secret-key-name")
            await client.get("/get/secret-key-name")
            await client.get("/no-such-command-xyz/secret-value")
        app.metrics.flush()
        assert sample(app, "redis_gateway_requests_total", get_ok) == before + 2
        assert sample(app, "redis_gateway_requests_total", other) == before_other + 1
        assert (
            sample(app, "redis_gateway_request_duration_seconds_count", {"protocol": "upstash"})
            == count + 3
        )
        access = [e for e in logs if e["event"] == "http.request"]
        assert [e["command"] for e in access] == ["GET", "GET", "other"]
        assert access[0]["status"] == 200 and access[0]["protocol"] == "upstash"
        assert "secret" not in repr(access)

    run(config(redis_url), scenario)


def test_stream_stops_when_the_client_goes_away(redis_url: str) -> None:
    closed: list[str] = []

    async def scenario(client: httpx.AsyncClient, app: GatewayApp) -> None:
        async def release() -> None:
            closed.append("stream released")

        async def streaming(request: Request, redis: Any, guard: Any) -> Response:
            slot = app.streams.registry.open("upstash_sse")
            assert slot is not None
            slot.outbox.put(b"first")  # then nothing more: a quiet subscription
            body = StreamBody(slot, release=release)
            return Response(200, content_type="application/json", stream=body)

        app.mounts = [("/", "upstash", streaming)]
        leave = asyncio.Event()
        sent: list[Message] = []
        messages: list[Message] = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> Message:
            if messages:
                return messages.pop(0)
            await leave.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)
            if message.get("body") == b"first":
                leave.set()  # the client goes away after the first chunk

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/sub",
            "raw_path": b"/sub",
            "query_string": b"",
            "headers": [],
            "client": ("10.0.0.1", 1),
        }
        before = sample(
            app, "redis_gateway_streams_closed_total", {"kind": "upstash_sse", "reason": "client"}
        )
        await asyncio.wait_for(app(scope, receive, send), timeout=5)
        assert [m.get("body") for m in sent[1:]] == [b"first"]
        assert len(app.streams.registry) == 0
        after = sample(
            app, "redis_gateway_streams_closed_total", {"kind": "upstash_sse", "reason": "client"}
        )
        assert after == before + 1

    run(config(redis_url), scenario)
    assert closed == ["stream released"]
