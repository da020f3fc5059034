"""Webdis's WebSocket endpoints with the ``websockets`` client, on both engines:
``/.json`` and ``/.raw`` commands and replies, pub/sub pushes, the handshake's checks,
a slow consumer, ``crossdomain.xml``, and the endpoints off by default."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import httpx
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from gateway_worker.config import Config
from gateway_worker.observability import metrics
from tests.helpers import async_wait_until
from tests.integration.conftest_gateway import make_config
from tests.streams_support import ENGINES, engine_gateway

pytestmark = pytest.mark.integration

KEY = "ws-user-key-0123456789abcdef"
CONFINED = "ws-confined-key-0123456789abcdef"
ORIGIN = "https://app.example.com"


def ws_config(redis_url: str, **server: object) -> Config:
    return make_config(
        redis_url,
        api={"webdis_websockets": True},
        auth={
            "enabled": True,
            "api_keys": [
                {"name": "user", "key": KEY},
                {"name": "confined", "key": CONFINED, "key_prefix": "app:"},
            ],
        },
        server={
            "max_streams": 3,
            "stream_send_buffer_bytes": 65536,
            "cors": {"enabled": True, "allowed_origins": [ORIGIN]},
            **server,
        },
    )


@pytest.fixture(scope="module", params=ENGINES)
def gateway(request: pytest.FixtureRequest, redis_url: str) -> Iterator[str]:
    with engine_gateway(ws_config(redis_url), request.param) as base:
        yield base


def ws_url(base: str, path: str, key: str = KEY) -> str:
    return base.replace("http://", "ws://") + path + (f"?_token={key}" if key else "")


async def recv_json(ws: object) -> object:
    return json.loads(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[attr-defined]


def test_json_commands_replies_and_pushes(gateway: str, clean_redis: redis.Redis) -> None:
    async def scenario() -> None:
        async with connect(ws_url(gateway, "/webdis/.json")) as ws:
            await ws.send('["SET","k","v"]')
            assert await recv_json(ws) == {"SET": [True, "OK"]}
            await ws.send('["INCRBY","n",5]')  # numbers keep their text
            assert await recv_json(ws) == {"INCRBY": 5}
            await ws.send('["subscribe","chat","news"]')
            assert await recv_json(ws) == {"subscribe": ["subscribe", "chat", 1]}
            assert await recv_json(ws) == {"subscribe": ["subscribe", "news", 2]}
            await async_wait_until(lambda: clean_redis.publish("chat", "hi") == 1, timeout=5)
            assert await recv_json(ws) == {"subscribe": ["message", "chat", "hi"]}
            await ws.send('["GET","k"]')  # still answered while subscribed
            assert await recv_json(ws) == {"GET": "v"}
            await ws.send('["UNSUBSCRIBE","chat"]')
            assert await recv_json(ws) == {"UNSUBSCRIBE": ["unsubscribe", "chat", 1]}
            await ws.send('["FLUSHALL"]')
            refused = await recv_json(ws)
            assert isinstance(refused, dict) and "FLUSHALL" in refused["error"]
            await ws.send("not json")
            assert "JSON array" in (await recv_json(ws))["error"]  # type: ignore[index]
            await ws.send('["PING"]')  # the socket is still usable
            assert await recv_json(ws) == {"PING": [True, "PONG"]}
        async with connect(ws_url(gateway, "/webdis/")) as ws:  # the prefix itself: JSON
            await ws.send('["GET","k"]')
            assert await recv_json(ws) == {"GET": "v"}

    asyncio.run(scenario())


def test_raw_is_resp_in_and_out(gateway: str, clean_redis: redis.Redis) -> None:
    async def scenario() -> None:
        async with connect(ws_url(gateway, "/webdis/.raw")) as ws:
            await ws.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xff\x00\r\n")
            assert await ws.recv() == b"+OK\r\n"
            await ws.send(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
            assert await ws.recv() == b"$2\r\n\xff\x00\r\n"
            await ws.send(b"*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nc\r\n")
            assert await ws.recv() == b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n$1\r\n1\r\n"
            await async_wait_until(lambda: clean_redis.publish("c", "m") == 1, timeout=5)
            assert await ws.recv() == b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"
            await ws.send(b"GET k")
            reply = await ws.recv()
            assert isinstance(reply, bytes) and reply.startswith(b"-ERR not a RESP command")

    asyncio.run(scenario())


def test_the_handshake_checks_what_an_http_request_would(
    gateway: str, clean_redis: redis.Redis
) -> None:
    async def status_of(url: str, **kwargs: object) -> int:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, **kwargs):  # type: ignore[arg-type]
                pass
        return refused.value.response.status_code

    async def scenario() -> None:
        assert await status_of(ws_url(gateway, "/webdis/.nope")) == 404
        assert await status_of(ws_url(gateway, "/webdis/.json", key="")) == 401
        assert await status_of(ws_url(gateway, "/webdis/.json", key="wrong-key-0123456789")) == 401
        evil = {"origin": "https://evil.example"}
        assert await status_of(ws_url(gateway, "/webdis/.json"), additional_headers=evil) == 403
        good = {"origin": ORIGIN, "x-api-key": KEY}
        async with connect(ws_url(gateway, "/webdis/.json", key=""), additional_headers=good) as ws:
            await ws.send('["PING"]')
            assert await recv_json(ws) == {"PING": [True, "PONG"]}
        async with connect(ws_url(gateway, "/webdis/.json", key=CONFINED)) as ws:
            await ws.send('["SUBSCRIBE","other"]')
            assert "key prefix" in (await recv_json(ws))["error"]  # type: ignore[index]
            await ws.send('["SUBSCRIBE","app:chat"]')
            assert await recv_json(ws) == {"SUBSCRIBE": ["subscribe", "app:chat", 1]}
        url = ws_url(gateway, "/webdis/.json")
        async with connect(url), connect(url), connect(url):  # server.max_streams = 3
            assert await status_of(url) == 503

    asyncio.run(scenario())


def slow_consumers() -> float:
    value = metrics.get().registry.get_sample_value(
        "redis_gateway_streams_closed_total",
        {"kind": "webdis_websocket", "reason": "slow_consumer"},
    )
    return value or 0.0


def test_a_slow_websocket_consumer_is_dropped(gateway: str, clean_redis: redis.Redis) -> None:
    before = slow_consumers()

    async def scenario() -> int:
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.setblocking(False)
        await asyncio.get_running_loop().sock_connect(
            slow, ("127.0.0.1", int(gateway.rsplit(":", 1)[1]))
        )
        async with connect(ws_url(gateway, "/webdis/.json"), sock=slow) as ws:
            await ws.send('["SUBSCRIBE","flood"]')
            assert await recv_json(ws) == {"SUBSCRIBE": ["subscribe", "flood", 1]}
            ws.transport.pause_reading()  # from now on, this client reads nothing
            payload = "x" * 65536
            sent = 0
            while slow_consumers() == before:
                assert sent < 2000, "the slow consumer was never dropped"
                clean_redis.publish("flood", payload)
                sent += 1
                await asyncio.sleep(0)
            ws.transport.abort()  # (its closing handshake would wait for a reply never read)
            return sent

    sent = asyncio.run(scenario())
    assert sent * 65536 < 64 * 1024 * 1024


def test_crossdomain_xml_as_webdis_serves_it(gateway: str) -> None:
    r = httpx.get(gateway + "/webdis/crossdomain.xml", headers={"x-api-key": KEY})
    assert r.status_code == 200 and r.headers["content-type"] == "application/xml"
    assert r.content.startswith(b'<?xml version="1.0"?>\n<!DOCTYPE cross-domain-policy')
    assert b'<allow-access-from domain="*" />' in r.content


@pytest.mark.parametrize("engine", ENGINES)
def test_websockets_are_off_by_default(redis_url: str, engine: str) -> None:
    config = make_config(redis_url)

    async def scenario(base: str) -> None:
        with pytest.raises(InvalidStatus):
            async with connect(ws_url(base, "/webdis/.json", key="")):
                pass

    with engine_gateway(config, engine) as base:
        asyncio.run(scenario(base))
