"""Differential test: the gateway and a real Webdis answer the same URLs identically.

Both serve the same Redis; every URL's status, Content-Type, body and ETag are compared.
Runs where a ``webdis`` binary is installed (``apt-get install webdis``; the benchmark
needs it too), and is skipped elsewhere. Debian's Webdis (0.1.9) is built without
MessagePack and predates the stream/geo objects, so those formats are covered by the
unit tests (derived from Webdis's source) instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from tests.helpers import free_port, wait_until
from tests.integration.conftest_gateway import make_config, running_gateway

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("webdis") is None, reason="webdis is not installed"),
]

# Requests over the data set up in ``seeded`` (read-only, or idempotent writes):
# (method, path-and-query, body).
CASES: list[tuple[str, str, bytes | None]] = [
    ("GET", "/GET/hello", None),
    *[
        ("GET", f"/GET/hello.{ext}", None)
        for ext in (
            "json",
            "txt",
            "raw",
            "html",
            "xhtml",
            "xml",
            "png",
            "jpg",
            "jpeg",
            "css",
            "bin",
            "foo",
        )
    ],
    ("GET", "/GET/hello?jsonp=cb", None),
    ("GET", "/GET/hello.js?callback=cb", None),
    ("GET", "/GET/hello?type=application/pdf", None),
    ("GET", "/GET/hello.json?type=text/x-foo", None),
    ("GET", "/GET/hello.", None),
    ("GET", "/GET/nokey", None),
    ("GET", "/GET/nokey.raw", None),
    ("GET", "/GET/a%2fb", None),
    ("GET", "/GET/a%2Fb.txt", None),
    ("GET", "/GET/ctl", None),
    ("GET", "/GET/utf", None),
    ("GET", "/GET/bin.raw", None),
    ("GET", "/STRLEN/hello", None),
    ("GET", "/INCRBY/cnt/0", None),
    ("GET", "/INCRBY/cnt/0.raw", None),
    ("GET", "/INCRBY/cnt/0.txt", None),
    ("GET", "/EXISTS/hello/nokey", None),
    ("GET", "/TYPE/h", None),
    ("GET", "/TYPE/h.raw", None),
    ("GET", "/TYPE/h.txt", None),
    ("GET", "/HGETALL/h", None),
    ("GET", "/hgetall/h", None),
    ("GET", "/HGETALL/nokey", None),
    ("GET", "/LRANGE/l/0/-1", None),
    ("GET", "/LRANGE/l/0/-1.raw", None),
    ("GET", "/LRANGE/l/0/-1.txt", None),
    ("GET", "/LRANGE/l/0/-1.txt?sep=,", None),
    ("GET", "/MGET/hello/nokey/cnt", None),
    ("GET", "/MGET/hello/nokey/cnt.txt?sep=;", None),
    ("GET", "/ZRANGE/z/0/-1/WITHSCORES", None),
    ("GET", "/ZRANGE/z/0/-1/WITHSCORES.raw", None),
    ("GET", "/SMEMBERS/st.raw", None),
    ("GET", "/PING", None),
    ("GET", "/PING.txt", None),
    ("GET", "/PING.raw", None),
    ("GET", "/ECHO/%2e", None),
    ("GET", "/ECHO/a+b%2Bc", None),
    ("GET", "/ECHO/%C3%A9t%C3%A9", None),
    ("GET", "/GET//x", None),
    ("GET", "/MAKE-ME-COFFEE", None),
    ("GET", "/MAKE-ME-COFFEE.raw", None),
    ("GET", "/MAKE-ME-COFFEE.txt", None),
    ("GET", "/3/GET/k3", None),
    ("GET", "/7", None),
    ("POST", "/", b"GET/hello"),
    ("POST", "/", b"GET/hello.txt"),
    ("POST", "/", b"3/GET/k3"),
    ("PUT", "/SET/up", b"put body/with.dots"),  # idempotent: same answer twice
    ("GET", "/GET/up.txt", None),
    ("OPTIONS", "/GET/hello", None),
]


@pytest.fixture(scope="module")
def webdis(redis_url: str) -> Iterator[str]:
    parts = urlsplit(redis_url)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="webdis-"))
    (workdir / "webdis.json").write_text(
        json.dumps(
            {
                "redis_host": parts.hostname,
                "redis_port": parts.port,
                "http_host": "127.0.0.1",
                "http_port": port,
                "threads": 1,
                "daemonize": False,
                "database": 0,
                "verbosity": 1,
                "logfile": str(workdir / "webdis.log"),
            }
        )
    )
    proc = subprocess.Popen(
        ["webdis", str(workdir / "webdis.json")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(base + "/PING", timeout=1).status_code == 200, what="webdis to answer"
        )
        yield base
    finally:
        proc.kill()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def gateway(redis_url: str) -> Iterator[str]:
    config = make_config(redis_url, api={"webdis_prefix": "/", "upstash_prefix": "/upstash"})
    with running_gateway(config) as base:
        yield base


@pytest.fixture
def seeded(clean_redis: redis.Redis) -> redis.Redis:
    clean_redis.set("hello", "world")
    clean_redis.set("a/b", "slash")
    clean_redis.set("ctl", b'a\nb\x01"\\/')
    clean_redis.set("utf", "été ✓")
    clean_redis.set("bin", b"\x00\xff")
    clean_redis.set("cnt", 41)
    clean_redis.hset("h", mapping={"f1": "v1", "f2": "2"})
    clean_redis.rpush("l", "a", "b", "c")
    clean_redis.zadd("z", {"a": 1, "b": 2.5})
    clean_redis.sadd("st", "x")
    port = clean_redis.connection_pool.connection_kwargs["port"]
    db3 = redis.Redis(host="127.0.0.1", port=port, db=3)
    try:
        db3.set("k3", "v3")
    finally:
        db3.close()
    return clean_redis


def _answer(
    client: httpx.Client, method: str, target: str, body: bytes | None
) -> tuple[int, str | None, bytes, str | None]:
    r = client.request(method, target, content=body)
    if r.status_code != 200:  # Webdis's error answers are empty; ours carry JSON
        return r.status_code, None, b"", None
    return r.status_code, r.headers.get("content-type"), r.content, r.headers.get("etag")


def test_same_answers_as_webdis(webdis: str, gateway: str, seeded: redis.Redis) -> None:
    differences = []
    with (
        httpx.Client(base_url=webdis, timeout=10) as theirs,
        httpx.Client(base_url=gateway, timeout=10) as ours,
    ):
        for method, target, body in CASES:
            expected = _answer(theirs, method, target, body)
            got = _answer(ours, method, target, body)
            if got != expected:
                differences.append(f"{method} {target}: webdis {expected!r}, gateway {got!r}")
    assert not differences, "\n".join(differences)
    assert len(CASES) > 50
