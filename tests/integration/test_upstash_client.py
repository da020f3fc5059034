"""The real ``upstash-redis`` Python client against the gateway and a real Redis."""

# upstash-redis annotates SET/EXPIRE/... as returning `str | None`, but the client
# returns the booleans these tests compare with `is True`.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Literal

import pytest
import redis
from upstash_redis import Redis
from upstash_redis.errors import UpstashError

from gateway_worker.config import DANGEROUS_COMMANDS
from tests.integration.conftest_gateway import make_config, running_gateway

pytestmark = pytest.mark.integration

TOKEN = "upstash-test-token-0123456789"


@pytest.fixture(scope="module")
def gateway(redis_url: str) -> Iterator[str]:
    # Scripting is denied by default (issue 8); an operator may allow EVAL/EVALSHA back,
    # as here, to check the client's eval() against the gateway.
    denied = [c for c in DANGEROUS_COMMANDS if c not in ("EVAL", "EVALSHA")]
    with running_gateway(make_config(redis_url, policy={"denied_commands": denied})) as base:
        yield base


@pytest.fixture(params=["base64", "plain"])
def client(
    request: pytest.FixtureRequest, gateway: str, clean_redis: redis.Redis
) -> Iterator[Redis]:
    encoding: Literal["base64"] | None = "base64" if request.param == "base64" else None
    with Redis(
        url=gateway, token=TOKEN, rest_encoding=encoding, allow_telemetry=False, rest_retries=0
    ) as upstash:
        yield upstash


def test_strings(client: Redis) -> None:
    assert client.set("greeting", "hello") is True
    assert client.get("greeting") == "hello"
    assert client.append("greeting", " world") == 11
    assert client.strlen("greeting") == 11
    assert client.getrange("greeting", 0, 4) == "hello"
    assert client.set("greeting", "x", nx=True) is False
    assert client.mset({"a": "1", "b": "2"}) is True
    assert client.mget("a", "b", "missing") == ["1", "2", None]
    assert client.incr("counter") == 1
    assert client.incrby("counter", 41) == 42
    assert client.incrbyfloat("counter", 0.5) == 42.5
    assert client.get("missing") is None
    # A value that is the text "OK" must round-trip as data, not as a status.
    assert client.set("ok", "OK") is True
    assert client.get("ok") == "OK"


def test_unicode_and_binary_safe_text(client: Redis, clean_redis: redis.Redis) -> None:
    text = "héllo ☃ \u0000 \r\n end/with%2fslash"
    assert client.set("uni", text) is True
    assert client.get("uni") == text
    assert clean_redis.get("uni") == text.encode()


def test_hashes(client: Redis) -> None:
    assert client.hset("h", values={"f1": "v1", "f2": "2"}) == 2
    assert client.hget("h", "f1") == "v1"
    assert client.hgetall("h") == {"f1": "v1", "f2": "2"}
    assert client.hincrby("h", "f2", 3) == 5
    assert sorted(client.hkeys("h")) == ["f1", "f2"]
    assert client.hexists("h", "nope") is False
    assert client.hdel("h", "f1") == 1


def test_lists_and_sets(client: Redis) -> None:
    assert client.rpush("l", "a", "b", "c") == 3
    assert client.lrange("l", 0, -1) == ["a", "b", "c"]
    assert client.lpop("l") == "a"
    assert client.llen("l") == 2
    assert client.sadd("s", "x", "y", "y") == 2
    assert sorted(client.smembers("s")) == ["x", "y"]
    assert client.sismember("s", "x") is True


def test_sorted_sets(client: Redis) -> None:
    assert client.zadd("z", {"one": 1, "two": 2.5}) == 2
    assert client.zscore("z", "two") == 2.5
    assert client.zrange("z", 0, -1, withscores=True) == [("one", 1.0), ("two", 2.5)]
    assert client.zincrby("z", 1, "one") == 2.0
    assert client.zcard("z") == 2


def test_expiry_and_scan(client: Redis) -> None:
    assert client.set("temp", "v", ex=100) is True
    assert 0 < client.ttl("temp") <= 100
    assert client.expire("temp", 5) is True
    assert client.persist("temp") is True
    assert client.ttl("temp") == -1
    for i in range(25):
        client.set(f"scan:{i}", i)
    seen: set[str] = set()
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor, match="scan:*", count=10)
        seen.update(keys)
        if cursor == 0:
            break
    assert len(seen) == 25


def test_eval_scripts(client: Redis) -> None:
    assert client.eval("return 1 + 1") == 2
    assert client.eval("return KEYS[1]", keys=["mykey"]) == "mykey"
    assert client.eval("return {1, ARGV[1], redis.status_reply('FINE')}", args=["x"]) == [
        1,
        "x",
        "FINE",
    ]
    client.set("sk", "Hello")
    assert client.eval("return redis.call('GET', KEYS[1])", keys=["sk"]) == "Hello"
    # SCRIPT is refused by the default policy; EVAL caches the script for EVALSHA.
    script = "return ARGV[1]"
    assert client.eval(script, args=["direct"]) == "direct"
    sha = hashlib.sha1(script.encode()).hexdigest()
    assert client.evalsha(sha, args=["via sha"]) == "via sha"


def test_pipeline(client: Redis) -> None:
    pipe = client.pipeline()
    pipe.set("p", 1)
    pipe.incr("p")
    pipe.get("p")
    pipe.hset("ph", values={"a": "b"})
    assert pipe.exec() == [True, 2, "2", 1]


def test_transaction(client: Redis, clean_redis: redis.Redis) -> None:
    tx = client.multi()
    tx.set("t", 10)
    tx.incrby("t", 5)
    tx.get("t")
    assert tx.exec() == [True, 15, "15"]
    assert clean_redis.get("t") == b"15"


def test_redis_errors_become_upstash_errors(client: Redis) -> None:
    client.set("str", "x")
    with pytest.raises(UpstashError, match="WRONGTYPE"):
        client.lpush("str", "y")


def test_sync_token_changes_after_every_write(gateway: str, clean_redis: redis.Redis) -> None:
    with Redis(url=gateway, token=TOKEN, allow_telemetry=False, read_your_writes=True) as c:
        _check_sync_tokens(c)


def _check_sync_tokens(client: Redis) -> None:
    tokens = [client._sync_token]
    client.set("rw", "1")
    tokens.append(client._sync_token)
    pipe = client.pipeline()
    pipe.incr("rw")
    pipe.exec()
    tokens.append(client._sync_token)
    tx = client.multi()
    tx.incr("rw")
    tx.exec()
    tokens.append(client._sync_token)
    client.eval("return redis.call('INCR', KEYS[1])", keys=["rw"])
    tokens.append(client._sync_token)
    assert tokens[0] == ""
    assert len(set(tokens)) == len(tokens), tokens
    assert client.get("rw") == "4"
