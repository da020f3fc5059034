"""The Upstash protocol over plain HTTP: exact bodies, status codes and headers."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from gateway_worker.config import Config
from tests.integration.conftest_gateway import make_config, running_gateway

pytestmark = pytest.mark.integration


def gateway_config(redis_url: str) -> Config:
    """The suite's gateway (tests/integration/test_other_engine.py serves it too)."""
    return make_config(
        redis_url,
        server={"max_body_bytes": 4096, "max_arguments": 8, "request_timeout_seconds": 1.0},
    )


@pytest.fixture(scope="module")
def gateway(redis_url: str) -> Iterator[str]:
    with running_gateway(gateway_config(redis_url)) as base:
        yield base


@pytest.fixture
def http(gateway: str, clean_redis: redis.Redis) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, timeout=10) as client:
        yield client


def test_body_form_keeps_number_text(http: httpx.Client, clean_redis: redis.Redis) -> None:
    r = http.post("/", content=b'["SET","n",1.50,"EX",100]')
    assert (r.status_code, r.content) == (200, b'{"result":"OK"}')
    assert r.headers["content-type"] == "application/json"
    assert clean_redis.get("n") == b"1.50"
    assert http.post("/", content=b'["GET","n"]').content == b'{"result":"1.50"}'
    assert http.post("/", content=b'["TTL","n"]').content == b'{"result":100}'


def test_path_form_with_body_and_query(http: httpx.Client, clean_redis: redis.Redis) -> None:
    r = http.post("/set/k%2Fslash", content=b"body value", params={"EX": "60"})
    assert r.content == b'{"result":"OK"}'
    assert clean_redis.get("k/slash") == b"body value"
    assert 0 < clean_redis.ttl("k/slash") <= 60
    assert http.get("/get/k%2Fslash").content == b'{"result":"body value"}'
    assert http.get("/GET/k%2Fslash?_token=ignored").content == b'{"result":"body value"}'
    assert http.get("/incr/c").content == b'{"result":1}'
    assert http.get("/get/none").content == b'{"result":null}'
    clean_redis.rpush("l", "a", "b")
    assert http.get("/lrange/l/0/-1").content == b'{"result":["a","b"]}'


def test_redis_error_is_400(http: httpx.Client) -> None:
    r = http.get("/nosuchcommand/x")
    assert r.status_code == 400
    assert r.json()["error"].startswith("ERR unknown command 'nosuchcommand'")
    http.get("/set/s/v")
    r = http.get("/lpush/s/x")
    assert r.status_code == 400
    assert r.json() == {
        "error": "WRONGTYPE Operation against a key holding the wrong kind of value"
    }


def test_malformed_requests(http: httpx.Client) -> None:
    cases = [
        (b'["SET","k"', "ERR request body is not valid JSON"),
        (b'{"cmd":"GET"}', "ERR expected a JSON array of strings and numbers"),
        (b"[]", "ERR empty command"),
        (b'["SET","k",true]', "ERR argument 3 is a boolean; expected a string or a number"),
        (b'["SET","k",null]', "ERR argument 3 is null; expected a string or a number"),
        (b'["SET","k",NaN]', "ERR NaN is not a valid argument"),
    ]
    for body, message in cases:
        r = http.post("/", content=body)
        assert r.status_code == 400, body
        assert r.json()["error"].startswith(message), (body, r.text)
    r = http.post("/", content=json.dumps(["MSET", *["a"] * 8]))
    assert r.status_code == 400
    assert r.json() == {"error": "ERR too many arguments (9 > server.max_arguments=8)"}


def test_deeply_nested_body_is_400_not_500(http: httpx.Client) -> None:
    # 2,000 levels: past the JSON parser's recursion limit (a RecursionError, 500, before).
    deep = b"[" * 2000 + b"]" * 2000
    for path in ("/", "/pipeline", "/multi-exec"):
        r = http.post(path, content=deep)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"] == (
            "ERR request body nests arrays or objects more than 32 levels deep (a command "
            "is an array of strings and numbers, a pipeline an array of commands)"
        )
    # Brackets inside strings are not nesting.
    r = http.post("/", content=json.dumps(["ECHO", "[" * 100]))
    assert r.json() == {"result": "[" * 100}


def test_method_not_allowed_and_sync_token(http: httpx.Client) -> None:
    r = http.delete("/get/k")
    assert r.status_code == 405
    assert r.headers["allow"] == "HEAD, GET, POST, PUT"
    assert r.json() == {"error": "method DELETE not allowed; use one of HEAD, GET, POST, PUT"}
    assert r.headers["upstash-sync-token"]
    r = http.get("/pipeline")
    assert (r.status_code, r.json()) == (405, {"error": "/pipeline needs POST, not GET"})


def test_oversized_body_is_413(http: httpx.Client) -> None:
    r = http.post("/set/big", content=b"x" * 5000)
    assert r.status_code == 413
    assert r.json() == {"error": "request body too large: 5000 bytes > server.max_body_bytes=4096"}


def test_sync_token_changes_on_writes_only(http: httpx.Client) -> None:
    first = http.get("/set/t/1").headers["upstash-sync-token"]
    after_read = http.get("/get/t").headers["upstash-sync-token"]
    after_write = http.get("/incr/t").headers["upstash-sync-token"]
    assert first == after_read
    assert after_write != first


def test_base64_encoding(http: httpx.Client, clean_redis: redis.Redis) -> None:
    b64 = {"upstash-encoding": "base64"}
    assert http.get("/set/b/OK", headers=b64).content == b'{"result":"OK"}'
    # A bulk "OK" is data: encoded. Integers and nulls are not.
    assert http.get("/get/b", headers=b64).content == b'{"result":"T0s="}'
    assert http.get("/incr/i", headers=b64).content == b'{"result":1}'
    assert http.get("/get/none", headers=b64).content == b'{"result":null}'
    clean_redis.set("bin", b"\xff\x00ab")
    assert http.get("/get/bin", headers=b64).content == b'{"result":"/wBhYg=="}'
    # Without the header, invalid UTF-8 becomes U+FFFD.
    assert http.get("/get/bin").json() == {"result": "\ufffd\u0000ab"}


def test_resp2_format(http: httpx.Client) -> None:
    resp2 = {"upstash-response-format": "resp2"}
    r = http.get("/set/r/hello", headers=resp2)
    assert (r.content, r.headers["content-type"]) == (b"+OK\r\n", "application/octet-stream")
    assert http.get("/get/r", headers=resp2).content == b"$5\r\nhello\r\n"
    assert http.get("/get/missing", headers=resp2).content == b"$-1\r\n"
    r = http.post("/pipeline", headers=resp2, content=b'[["INCR","c"],["GET","r"]]')
    assert r.content == b":1\r\n$5\r\nhello\r\n"


def test_resp2_nil_array_is_not_a_nil_bulk(http: httpx.Client) -> None:
    resp2 = {"upstash-response-format": "resp2"}
    # BLPOP timing out answers a nil array; JSON has only one null.
    assert http.get("/blpop/empty-list/0.05", headers=resp2).content == b"*-1\r\n"
    assert http.get("/blpop/empty-list/0.05").content == b'{"result":null}'
    b64 = {"upstash-encoding": "base64"}
    assert http.get("/blpop/empty-list/0.05", headers=b64).content == b'{"result":null}'
    # Nested: a BLPOP inside MULTI answers *-1 at once, next to a nil bulk.
    body = b'[["BLPOP","empty-list","1"],["GET","missing"]]'
    r = http.post("/multi-exec", headers=resp2, content=body)
    assert r.content == b"*-1\r\n$-1\r\n"
    r = http.post("/multi-exec", content=body)
    assert r.json() == [{"result": None}, {"result": None}]


def test_pipeline_shapes(http: httpx.Client) -> None:
    r = http.post("/pipeline", content=b'[["SET","p","1"],["LPUSH","p","x"],["INCR","p"]]')
    assert r.status_code == 200
    assert r.json() == [
        {"result": "OK"},
        {"error": "WRONGTYPE Operation against a key holding the wrong kind of value"},
        {"result": 2},
    ]
    r = http.post("/pipeline", content=b'["GET","p"]')
    assert r.status_code == 400
    assert r.json()["error"].startswith("ERR command 1: expected a JSON array")


def test_multi_exec_shapes(http: httpx.Client, clean_redis: redis.Redis) -> None:
    r = http.post("/multi-exec", content=b'[["SET","m","1"],["INCR","m"],["GET","m"]]')
    assert r.json() == [{"result": "OK"}, {"result": 2}, {"result": "2"}]
    # A command Redis refuses while queueing discards the whole transaction.
    r = http.post("/multi-exec", content=b'[["SET","m","5"],["SET","m"]]')
    assert r.status_code == 400
    assert r.json()["error"].startswith("EXECABORT")
    assert "wrong number of arguments" in r.json()["error"]
    assert clean_redis.get("m") == b"2"


def test_refused_commands_are_403(http: httpx.Client) -> None:
    r = http.get("/flushall")
    assert r.status_code == 403
    assert "FLUSHALL" in r.json()["error"]
    r = http.post("/pipeline", content=b'[["GET","a"],["FLUSHDB"]]')
    assert r.status_code == 403
    assert r.json()["error"].startswith("command 2: ")
    r = http.get("/select/2")
    assert r.status_code == 400
    assert "not allowed through the gateway" in r.json()["error"]
    r = http.get("/scan/0/count/1000000")  # one call that large would block Redis
    assert r.status_code == 403
    assert "SCAN COUNT 1000000 is above the gateway's limit of 10000" in r.json()["error"]
    assert http.get("/scan/0/count/1000").status_code == 200


def test_blocking_command_does_not_stall_others(
    http: httpx.Client, gateway: str, clean_redis: redis.Redis
) -> None:
    results: list[httpx.Response] = []

    def blpop() -> None:
        with httpx.Client(base_url=gateway, timeout=10) as other:
            results.append(other.get("/blpop/queue/0.8"))

    thread = threading.Thread(target=blpop)
    thread.start()
    try:
        started = time.monotonic()
        for _ in range(20):
            assert http.get("/ping").content == b'{"result":"PONG"}'
        assert time.monotonic() - started < 0.7  # did not wait behind the BLPOP
    finally:
        thread.join(5)
    assert results[0].json() == {"result": None}


def test_request_timeout_is_504(http: httpx.Client) -> None:
    started = time.monotonic()
    r = http.get("/blpop/never/5")
    assert r.status_code == 504
    assert r.json() == {"error": "request did not complete within server.request_timeout_seconds=1"}
    assert time.monotonic() - started < 3
    assert http.get("/ping").status_code == 200


def test_a_body_that_does_not_arrive_in_time_is_408_not_504(gateway: str) -> None:
    """The client's fault, not the gateway's: a 5xx would page whoever watches the
    error rate (found by the fault suite: a slow-body attack was all 504s)."""
    port = int(gateway.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n["PI')
        started = time.monotonic()
        received = b""
        while not re.search(rb"\r\n\r\n.*}$", received, re.S):  # the whole JSON answer
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    assert time.monotonic() - started < 3
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), received
    assert json.loads(body) == {
        "error": "request body not received within server.request_timeout_seconds=1"
    }


def test_prefix_mount_and_404(redis_url: str, clean_redis: redis.Redis) -> None:
    config = make_config(redis_url, api={"upstash_prefix": "/upstash", "webdis_enabled": False})
    with running_gateway(config) as base, httpx.Client(base_url=base) as http:
        assert http.get("/upstash/set/pk/v").content == b'{"result":"OK"}'
        assert http.post("/upstash", content=b'["GET","pk"]').content == b'{"result":"v"}'
        r = http.post("/upstash/pipeline", content=b'[["GET","pk"]]')
        assert r.json() == [{"result": "v"}]
        r = http.get("/elsewhere/get/pk")
        assert r.status_code == 404
        assert r.json() == {"error": "no protocol is mounted at /elsewhere/get/pk"}
        assert http.get("/upstashx/get/pk").status_code == 404
