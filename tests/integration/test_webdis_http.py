"""End to end: Webdis URLs, auth, policy, rate limiting and CORS through the full app.

A real app on a real uvicorn (``running_gateway``), a real Redis, plain HTTP. Bodies,
Content-Type and ETag are compared exactly with Webdis's (read from Webdis 0.1.9).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
import redis

from gateway_worker.config import Config
from tests.helpers import wait_until
from tests.integration.conftest_gateway import make_config, running_gateway

pytestmark = pytest.mark.integration

SECRET = "j" * 40
OPEN_KEY = "open-key-0123456789abcdef"
CONFINED_KEY = "confined-key-0123456789ab"
READER_KEY = "reader-key-0123456789abcd"
APP_ORIGIN = "https://app.example.com"


def webdis_root_config(redis_url: str) -> Config:
    """Webdis mounted at / (Upstash moved away), as Webdis clients expect it."""
    return make_config(
        redis_url,
        api={"webdis_prefix": "/", "upstash_prefix": "/upstash"},
        server={"max_arguments": 6},
    )


@pytest.fixture(scope="module")
def webdis_root(redis_url: str) -> Iterator[str]:
    with running_gateway(webdis_root_config(redis_url)) as base:
        yield base


def secured_config(redis_url: str) -> Config:
    """Default mounts (/webdis), auth on, a rate limit, CORS for one origin."""
    return make_config(
        redis_url,
        auth={
            "enabled": True,
            "jwt_secret": SECRET,
            "api_keys": [
                {"name": "open", "key": OPEN_KEY},
                {"name": "confined", "key": CONFINED_KEY, "policy": "safe", "key_prefix": "app:"},
                {"name": "reader", "key": READER_KEY, "policy": "read_only"},
            ],
            "rate_limiting": {"enabled": True, "requests_per_minute": 6, "burst_size": 3},
        },
        server={"cors": {"enabled": True, "allowed_origins": [APP_ORIGIN]}},
    )


@pytest.fixture(scope="module")
def secured(redis_url: str) -> Iterator[str]:
    with running_gateway(secured_config(redis_url)) as base:
        yield base


def test_webdis_exact_bytes_headers_and_etag(webdis_root: str, clean_redis: redis.Redis) -> None:
    with httpx.Client(base_url=webdis_root, timeout=10) as http:
        r = http.get("/SET/hello/world")
        assert (r.status_code, r.content) == (200, b'{"SET":[true,"OK"]}')
        assert r.headers["content-type"] == "application/json"
        assert r.headers["etag"] == '"0db1124cf79ffeb80aff6d199d5822f8"'
        r = http.get("/GET/hello.txt")
        assert (r.content, r.headers["content-type"]) == (b"world", "text/plain")
        r = http.get("/GET/hello", params={"jsonp": "cb"})
        assert r.content == b'cb({"GET":"world"});\n'
        assert r.headers["etag"] == '"11d907cdec83c9d34a222669124fd480"'
        r = http.get("/GET/hello.raw")
        assert (r.content, r.headers["content-type"]) == (b"$5\r\nworld\r\n", "binary/octet-stream")
        r = http.get("/TYPE/hello", headers={"if-none-match": '"c3570f2969f90148f8ff7acd1d06b581"'})
        assert r.status_code == 200  # a different body ("string", not "none")
        etag = http.get("/GET/hello").headers["etag"]
        r = http.get("/GET/hello", headers={"if-none-match": etag})
        assert (r.status_code, r.content) == (304, b"")
        assert http.get("/GET/nothing.txt").status_code == 404
        r = http.put("/SET/file", content=b"\x00\xffbinary/.")
        assert r.content == b'{"SET":[true,"OK"]}'
        assert http.get("/GET/file.bin").content == b"\x00\xffbinary/."
        assert http.post("/", content=b"GET/hello").content == b'{"GET":"world"}'
        assert http.get("/2/SET/x/2").status_code == 200
        assert http.get("/2/GET/x").content == b'{"GET":"2"}'
        assert http.get("/GET/x").content == b'{"GET":null}'


def test_webdis_refusals_through_the_app(webdis_root: str, clean_redis: redis.Redis) -> None:
    with httpx.Client(base_url=webdis_root, timeout=10) as http:
        r = http.get("/FLUSHALL")
        assert r.status_code == 403
        assert "FLUSHALL" in r.json()["error"]
        assert http.delete("/GET/x").status_code == 405
        r = http.get("/MULTI")
        assert r.status_code == 200 and r.json()["MULTI"][0] is False


def test_webdis_argument_limit(webdis_root: str, clean_redis: redis.Redis) -> None:
    with httpx.Client(base_url=webdis_root, timeout=10) as http:
        r = http.get("/MSET/a/1/b/2/c/3/d/4")  # 8 arguments > server.max_arguments = 6
        assert r.status_code == 400
    assert clean_redis.get("a") is None


def test_auth_policy_and_prefix(secured: str, clean_redis: redis.Redis) -> None:
    with httpx.Client(base_url=secured, timeout=10) as http:
        r = http.get("/webdis/GET/k")
        assert r.status_code == 401
        assert "missing credentials" in r.json()["error"]
        r = http.get("/webdis/GET/k", headers={"x-api-key": "not-a-real-key-123456"})
        assert r.status_code == 401
        r = http.get("/webdis/SET/app:k/v", headers={"x-api-key": CONFINED_KEY})
        assert r.content == b'{"SET":[true,"OK"]}'
        r = http.get("/webdis/SET/other/v", params={"_token": CONFINED_KEY})
        assert r.status_code == 403
        assert "key prefix 'app:'" in r.json()["error"]
        r = http.get("/webdis/SET/k/v", headers={"authorization": f"Bearer {READER_KEY}"})
        assert r.status_code == 403 and "read-only" in r.json()["error"]
        now = int(time.time())
        token = jwt.encode({"sub": "alice", "iat": now, "exp": now + 60}, SECRET, "HS256")
        r = http.get("/webdis/GET/app:k", headers={"authorization": f"Bearer {token}"})
        assert r.content == b'{"GET":"v"}'
        expired = jwt.encode({"sub": "bob", "iat": now - 300, "exp": now - 120}, SECRET, "HS256")
        r = http.get("/webdis/GET/k", headers={"authorization": f"Bearer {expired}"})
        assert (r.status_code, r.json()) == (401, {"error": "JWT expired"})
    assert clean_redis.get("other") is None


def test_rate_limit_429_with_retry_after(secured: str, clean_redis: redis.Redis) -> None:
    with httpx.Client(base_url=secured, timeout=10) as http:
        codes = [
            http.get("/webdis/PING", headers={"x-api-key": OPEN_KEY}).status_code for _ in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]
        r = http.get("/webdis/PING", headers={"x-api-key": OPEN_KEY})
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 10
        assert "rate limit" in r.json()["error"]


def test_cors_preflight_and_headers(secured: str, clean_redis: redis.Redis) -> None:
    with httpx.Client(base_url=secured, timeout=10) as http:
        r = http.options(
            "/webdis/GET/k",
            headers={
                "origin": APP_ORIGIN,
                "access-control-request-method": "GET",
            },
        )
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == APP_ORIGIN
        r = http.options(
            "/webdis/GET/k",
            headers={
                "origin": "https://evil.example",
                "access-control-request-method": "GET",
            },
        )
        assert r.status_code == 403
        r = http.get("/webdis/GET/k", headers={"origin": APP_ORIGIN, "x-api-key": READER_KEY})
        assert r.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "ETag" in r.headers["access-control-expose-headers"]


def _kill_subscribers(client: redis.Redis) -> None:
    """End leftover subscriptions from Redis's side, so the server can stop."""
    client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # type: ignore[no-untyped-call]


def test_subscribe_is_a_chunked_stream(webdis_root: str, clean_redis: redis.Redis) -> None:
    received = bytearray()
    try:
        with (
            httpx.Client(base_url=webdis_root, timeout=10) as http,
            http.stream("GET", "/SUBSCRIBE/news") as r,
        ):
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/json"
            assert r.headers.get("transfer-encoding") == "chunked"
            chunks = r.iter_raw()
            received += next(chunks)
            assert received == b'{"SUBSCRIBE":["subscribe","news",1]}'
            assert clean_redis.publish("news", "hello") == 1
            expected = b'{"SUBSCRIBE":["message","news","hello"]}'
            while not received.endswith(expected):
                received += next(chunks)
    finally:
        _kill_subscribers(clean_redis)


def test_subscription_released_when_client_goes_away(
    webdis_root: str, clean_redis: redis.Redis
) -> None:
    try:
        with (
            httpx.Client(base_url=webdis_root, timeout=10) as http,
            http.stream("GET", "/SUBSCRIBE/gone") as r,
        ):
            assert next(r.iter_raw()) == b'{"SUBSCRIBE":["subscribe","gone",1]}'
        # The client went away: its Redis subscription must go too.
        wait_until(
            lambda: clean_redis.pubsub_numsub("gone") == [(b"gone", 0)],
            timeout=3,
            what="the subscriber's Redis connection to close",
        )
    finally:
        _kill_subscribers(clean_redis)
