"""Upstash's Server-Sent Events streams over real HTTP, on both engines: the curl
commands of Upstash's REST API docs, the event format, base64, auth and policy at the
opening, the streams limit, heartbeats on a quiet stream, a slow consumer, Redis lost."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import select
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from gateway_worker.config import Config
from gateway_worker.observability import metrics
from tests.helpers import wait_until
from tests.integration.conftest_gateway import make_config
from tests.streams_support import ENGINES, engine_gateway, next_data, sse_events

pytestmark = pytest.mark.integration

ADMIN = "admin-key-0123456789abcdef"  # policy "all": may MONITOR
USER = "user-key-0123456789abcdef"  # the default policy
CONFINED = "confined-key-0123456789abcdef"  # key_prefix "app:"
SSE = {"accept": "text/event-stream"}


def stream_config(redis_url: str) -> Config:
    return make_config(
        redis_url,
        auth={
            "enabled": True,
            "api_keys": [
                {"name": "admin", "key": ADMIN, "policy": "all"},
                {"name": "user", "key": USER},
                {"name": "confined", "key": CONFINED, "key_prefix": "app:"},
            ],
        },
        server={
            "max_streams": 3,
            "stream_send_buffer_bytes": 65536,
            "stream_heartbeat_seconds": 0.3,
            # Every timeout shorter than the quiet stream below stays open.
            "keepalive_timeout_seconds": 0.5,
            "request_timeout_seconds": 0.5,
            "request_header_timeout_seconds": 0.5,
        },
    )


@pytest.fixture(scope="module", params=ENGINES)
def gateway(request: pytest.FixtureRequest, redis_url: str) -> Iterator[str]:
    with engine_gateway(stream_config(redis_url), request.param) as base:
        yield base


def auth(key: str = USER) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **SSE}


def read_line(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> str:
    """The next line curl printed (to a deadline)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"curl printed no line within {timeout}s (so far {line!r})")
        byte = proc.stdout.read(1)
        if not byte:
            raise AssertionError(f"curl ended (so far {line!r})")
        line += byte
    return line.decode().rstrip("\n")


def data_lines(proc: subprocess.Popen[bytes], count: int) -> list[str]:
    lines: list[str] = []
    while len(lines) < count:
        line = read_line(proc)
        if line.startswith("data:"):
            lines.append(line)
    return lines


def curl(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["curl", "-sN", *args], stdout=subprocess.PIPE)


def test_the_curl_commands_of_upstash_docs(gateway: str, clean_redis: redis.Redis) -> None:
    token = f"Authorization: Bearer {ADMIN}"
    subscriber = curl("-X", "POST", f"{gateway}/subscribe/chat", "-H", token, "-H", SSE_HEADER)
    monitor = curl("-X", "POST", f"{gateway}/monitor", "-H", token, "-H", SSE_HEADER)
    try:
        assert data_lines(subscriber, 1) == ["data: subscribe,chat,1"]
        assert data_lines(monitor, 1) == ['data: "OK"']
        for message in ("hello", "how%20are%20you%20today%3F"):
            published = subprocess.run(
                ["curl", "-s", "-X", "POST", f"{gateway}/publish/chat/{message}", "-H", token],
                capture_output=True,
                check=True,
            )
            assert published.stdout == b'{"result":1}'
        assert data_lines(subscriber, 2) == [
            "data: message,chat,hello",
            "data: message,chat,how are you today?",
        ]
        clean_redis.get("k")
        wait_until(lambda: '"GET" "k"' in read_line(monitor), what="GET k in MONITOR")
    finally:
        for proc in (subscriber, monitor):
            proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()


SSE_HEADER = "Accept:text/event-stream"  # as Upstash's docs write it, without a space


def test_event_format_base64_patterns_and_the_body_form(
    gateway: str, clean_redis: redis.Redis
) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=gateway, timeout=5) as http:
            b64 = {**auth(), "upstash-encoding": "base64"}
            async with (
                http.stream("GET", "/psubscribe/news.*", headers=b64) as plain_get,
                http.stream("POST", "/", headers=auth(), content=b'["SUBSCRIBE","a,b"]') as body,
            ):
                assert plain_get.status_code == 200 and body.status_code == 200
                head = plain_get.headers
                assert head["content-type"] == "text/event-stream"
                assert head["cache-control"] == "no-cache" and head["x-accel-buffering"] == "no"
                assert "upstash-sync-token" in head
                patterns, channels = sse_events(plain_get), sse_events(body)
                enc = base64.b64encode
                assert (await next_data(patterns)).text == f"psubscribe,{enc(b'news.*').decode()},1"
                assert (await next_data(channels)).text == "subscribe,a,b,1"
                clean_redis.publish("news.eu", "line 1\nline 2")
                clean_redis.publish("a,b", "x,y")
                got = (await next_data(patterns)).text
                parts = [base64.b64decode(p) for p in got.split(",")[1:]]
                assert got.startswith("pmessage,") and parts == [
                    b"news.*",
                    b"news.eu",
                    b"line 1\nline 2",
                ]
                assert (await next_data(channels)).text == "message,a,b,x,y"

    asyncio.run(scenario())


def test_auth_policy_and_limits_apply_when_a_stream_opens(
    gateway: str, clean_redis: redis.Redis
) -> None:
    with httpx.Client(base_url=gateway, timeout=5) as http:
        assert http.post("/subscribe/x", headers=SSE).status_code == 401
        refused = http.post("/subscribe/x", headers={"authorization": f"Bearer {USER}"})
        assert refused.status_code == 400 and "Accept: text/event-stream" in refused.json()["error"]
        assert http.put("/subscribe/x", headers=auth()).status_code == 405
        assert http.post("/subscribe", headers=auth()).status_code == 400
        monitor = http.post("/monitor", headers=auth())
        assert monitor.status_code == 403 and "MONITOR" in monitor.json()["error"]
        outside = http.post("/subscribe/app:ok/other", headers=auth(CONFINED))
        assert outside.status_code == 403 and "key prefix" in outside.json()["error"]
        assert http.post("/psubscribe/*", headers=auth(CONFINED)).status_code == 403
        with (
            http.stream("POST", "/subscribe/app:ok", headers=auth(CONFINED)) as inside,
            http.stream("POST", "/psubscribe/app:*", headers=auth(CONFINED)) as pattern,
            http.stream("POST", "/subscribe/c", headers=auth()) as third,
        ):
            assert inside.status_code == pattern.status_code == third.status_code == 200
            full = http.post("/subscribe/d", headers=auth())  # server.max_streams = 3
            assert full.status_code == 503 and full.headers["retry-after"] == "1"
            assert "server.max_streams=3" in full.json()["error"]


def test_a_quiet_stream_gets_heartbeats_and_outlives_every_timeout(
    gateway: str, clean_redis: redis.Redis
) -> None:
    async def scenario() -> None:
        async with (
            httpx.AsyncClient(base_url=gateway, timeout=5) as http,
            http.stream("POST", "/subscribe/quiet", headers=auth()) as response,
        ):
            events = sse_events(response)
            assert (await next_data(events)).text == "subscribe,quiet,1"
            started = time.monotonic()
            pings = 0
            while time.monotonic() - started < 1.5:  # 3x every request/keep-alive timeout
                event = await events.__anext__()
                assert event.comment == "ping"
                pings += 1
            assert pings >= 3
            clean_redis.publish("quiet", "still here")
            assert (await next_data(events)).text == "message,quiet,still here"

    asyncio.run(scenario())


def slow_consumers() -> float:
    value = metrics.get().registry.get_sample_value(
        "redis_gateway_streams_closed_total", {"kind": "upstash_sse", "reason": "slow_consumer"}
    )
    return value or 0.0


def test_a_slow_consumer_is_cut_and_the_others_keep_everything(
    gateway: str, clean_redis: redis.Redis
) -> None:
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    slow.connect(("127.0.0.1", int(gateway.rsplit(":", 1)[1])))
    slow.sendall(
        b"POST /subscribe/flood HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n"
        b"accept: text/event-stream\r\nauthorization: Bearer " + USER.encode() + b"\r\n\r\n"
    )
    cut_before = slow_consumers()

    async def scenario() -> int:
        async with (
            httpx.AsyncClient(base_url=gateway, timeout=5) as http,
            http.stream("POST", "/subscribe/flood", headers=auth()) as response,
        ):
            events = sse_events(response)
            assert (await next_data(events)).text == "subscribe,flood,1"
            wait_until(lambda: clean_redis.pubsub_numsub("flood") == [(b"flood", 1)])
            payload = "x" * 65536
            sent = 0
            deadline = time.monotonic() + 20
            while slow_consumers() == cut_before:  # until the gateway cuts the slow one
                assert time.monotonic() < deadline, f"not cut after {sent} messages"
                clean_redis.publish("flood", f"{sent}:{payload}")
                event = await next_data(events)  # the fast client keeps up, every message
                assert event.text == f"message,flood,{sent}:{payload}"
                sent += 1
            return sent

    sent = asyncio.run(scenario())
    # Cut once it was behind by the stream buffer (64 KiB here) plus what the kernels and
    # the transport hold; the connection was dropped, not drained.
    assert sent * 65536 < 16 * 1024 * 1024
    slow.settimeout(5)
    with contextlib.suppress(ConnectionResetError):
        while slow.recv(1 << 20):
            pass
    slow.close()


def test_losing_redis_ends_the_stream(gateway: str, clean_redis: redis.Redis) -> None:
    async def scenario() -> list[str]:
        async with (
            httpx.AsyncClient(base_url=gateway, timeout=5) as http,
            http.stream("POST", "/subscribe/fragile", headers=auth()) as response,
        ):
            events = sse_events(response)
            first = await next_data(events)
            clean_redis.client_kill_filter(_type="pubsub")
            rest = [e.text async for e in events if e.comment is None]
            return [first.text, *rest]

    assert asyncio.run(scenario()) == ["subscribe,fragile,1"]


def test_publish_in_path_body_and_json_forms_reaches_a_base64_subscriber(
    gateway: str, clean_redis: redis.Redis
) -> None:
    async def scenario() -> list[bytes]:
        async with (
            httpx.AsyncClient(base_url=gateway, timeout=5) as http,
            http.stream(
                "GET", "/subscribe/pub", headers={**auth(), "upstash-encoding": "base64"}
            ) as response,
        ):
            events = sse_events(response)
            assert (await next_data(events)).text == f"subscribe,{b64('pub')},1"
            replies = [
                await http.post("/publish/pub/in%20the%20path", headers=auth()),
                await http.post("/publish/pub", headers=auth(), content=b"body,\x00\xff"),
                await http.post("/", headers=auth(), json=["PUBLISH", "pub", "json form"]),
                await http.post(  # base64 applies to replies too; an integer stays one
                    "/publish/pub/last",
                    headers={**auth(), "upstash-encoding": "base64"},
                ),
            ]
            assert [(r.status_code, r.json()) for r in replies] == [(200, {"result": 1})] * 4
            payloads = []
            for _ in replies:
                kind, channel, payload = (await next_data(events)).text.split(",")
                assert (kind, channel) == ("message", b64("pub"))
                payloads.append(base64.b64decode(payload))
            return payloads

    assert asyncio.run(scenario()) == [b"in the path", b"body,\x00\xff", b"json form", b"last"]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
