"""The Webdis protocol handler against a real Redis, through the real Redis executor.

Expected bodies and ETags are Webdis's own for the same requests (read from Webdis
0.1.9 on the same Redis; see tests/unit/test_webdis_format.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
import redis

from gateway_worker.access.policy import CommandPolicy
from gateway_worker.config import Config, RedisConfig
from gateway_worker.exchange import CommandGuard, Principal, Request, Response
from gateway_worker.protocols.webdis import handle
from gateway_worker.redis import RedisClient
from gateway_worker.streams.services import StreamServices
from tests.fakes import FakeMetrics
from tests.helpers import free_port
from tests.helpers import make_request as req

pytestmark = pytest.mark.integration
T = TypeVar("T")


def allow_all(args: list[bytes], db: int | None = None) -> str | None:
    return None


def with_client(url: str, body: Callable[[RedisClient], Awaitable[T]]) -> T:
    async def main() -> T:
        client = RedisClient(RedisConfig(url=url))
        await client.start()
        try:
            return await body(client)
        finally:
            await client.close()

    return asyncio.run(main())


def call(url: str, *requests: Request, guard: CommandGuard = allow_all) -> list[Response]:
    async def body(client: RedisClient) -> list[Response]:
        return [await handle(r, client, guard) for r in requests]

    return with_client(url, body)


def test_set_get_and_etag(redis_url: str, clean_redis: redis.Redis) -> None:
    set_, get, raw, txt = call(
        redis_url,
        req("GET", "/SET/hello/world"),
        req("GET", "/GET/hello"),
        req("GET", "/GET/hello.raw"),
        req("GET", "/GET/hello.txt"),
    )
    assert set_.body == b'{"SET":[true,"OK"]}'
    assert ("ETag", '"0db1124cf79ffeb80aff6d199d5822f8"') in set_.headers
    assert (get.status, get.content_type, get.body) == (200, "application/json", b'{"GET":"world"}')
    assert (raw.content_type, raw.body) == ("binary/octet-stream", b"$5\r\nworld\r\n")
    assert (txt.content_type, txt.body) == ("text/plain", b"world")
    assert clean_redis.get("hello") == b"world"
    etag = dict(get.headers)["ETag"]
    (again,) = call(redis_url, req("GET", "/GET/hello", headers={"if-none-match": etag}))
    assert (again.status, again.body) == (304, b"")


def test_percent_decoding_and_binary_put(redis_url: str, clean_redis: redis.Redis) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\xff/."
    put, get, missing = call(
        redis_url,
        req("PUT", "/SET/a%2fb%2ec", body=png),
        req("GET", "/GET/a%2Fb%2Ec.png"),
        req("GET", "/GET/nothing.png"),
    )
    assert put.body == b'{"SET":[true,"OK"]}'
    assert clean_redis.get("a/b.c") == png
    assert (get.status, get.content_type, get.body) == (200, "image/png", png)
    assert missing.status == 404


def test_post_body_command(redis_url: str, clean_redis: redis.Redis) -> None:
    (response,) = call(redis_url, req("POST", "/", body=b"SET/p/hello%20world+x"))
    assert response.body == b'{"SET":[true,"OK"]}'
    assert clean_redis.get("p") == b"hello world x"


def test_hgetall_info_lists_and_errors(redis_url: str, clean_redis: redis.Redis) -> None:
    clean_redis.hset("h", mapping={"f1": "v1", "f2": "2"})
    clean_redis.rpush("l", "a", "b", "c")
    hgetall, info, lrange, sep, coffee = call(
        redis_url,
        req("GET", "/HGETALL/h"),
        req("GET", "/INFO"),
        req("GET", "/LRANGE/l/0/-1"),
        req("GET", "/LRANGE/l/0/-1.txt", [("sep", ",")]),
        req("GET", "/MAKE-ME-COFFEE"),
    )
    assert hgetall.body == b'{"HGETALL":{"f1":"v1","f2":"2"}}'
    info_obj = json.loads(info.body)["INFO"]
    assert isinstance(info_obj, dict) and "redis_version" in info_obj
    assert lrange.body == b'{"LRANGE":["a","b","c"]}'
    assert sep.body == b"a,b,c"
    assert coffee.status == 200
    assert json.loads(coffee.body)["MAKE-ME-COFFEE"][0] is False


def test_database_prefix(redis_url: str, clean_redis: redis.Redis) -> None:
    set3, get3, get0 = call(
        redis_url,
        req("GET", "/3/SET/k3/v3"),
        req("GET", "/3/GET/k3"),
        req("GET", "/GET/k3"),
    )
    assert set3.body == b'{"SET":[true,"OK"]}'
    assert get3.body == b'{"GET":"v3"}'
    assert get0.body == b'{"GET":null}'
    db3 = redis.Redis.from_url(redis_url, db=3)
    try:
        assert db3.get("k3") == b"v3"
    finally:
        db3.close()


def test_policy_refusal_is_403_and_nothing_runs(redis_url: str, clean_redis: redis.Redis) -> None:
    clean_redis.set("keep", "1")
    policy = CommandPolicy(Config())
    guard = policy.guard_for(Principal("anonymous"))
    (flush,) = call(redis_url, req("GET", "/FLUSHALL"), guard=guard)
    confined_guard = policy.guard_for(Principal("c", key_prefix="app:"))
    (confined,) = call(redis_url, req("GET", "/GET/keep"), guard=confined_guard)
    assert flush.status == 403
    assert "FLUSHALL" in json.loads(flush.body)["error"]
    assert confined.status == 403
    assert clean_redis.get("keep") == b"1"


def test_redis_unreachable_is_503() -> None:
    async def main() -> Response:
        client = RedisClient(RedisConfig(url=f"redis://127.0.0.1:{free_port()}", max_retries=0))
        try:
            return await handle(req("GET", "/GET/k"), client, allow_all)
        finally:
            await client.close()

    response = asyncio.run(main())
    assert response.status == 503
    assert "Redis unavailable" in json.loads(response.body)["error"]


async def next_chunk(response: Response) -> bytes:
    """The next chunk a stream would send (straight from its outbox)."""
    assert response.stream is not None
    item = await asyncio.wait_for(response.stream.slot.outbox.next(), 5)
    assert isinstance(item, bytes), item
    return item


async def end_stream(response: Response) -> None:
    """What the app does once the client went away."""
    assert response.stream is not None and response.stream.release is not None
    await response.stream.release()
    response.stream.slot.close()


def with_streams(url: str, body: Callable[[RedisClient, StreamServices], Awaitable[T]]) -> T:
    async def main() -> T:
        config = Config.model_validate({"redis": {"url": url}})
        client = RedisClient(config.redis)
        await client.start()
        streams = StreamServices(config, lambda: client.stream_options, FakeMetrics())
        try:
            return await body(client, streams)
        finally:
            await streams.close()
            await client.close()

    return asyncio.run(main())


def test_subscribe_streams_messages_and_releases_subscription(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    async def body(client: RedisClient, streams: StreamServices) -> tuple[list[bytes], int]:
        response = await handle(
            req("GET", "/SUBSCRIBE/ch1/ch2"), client, allow_all, streams=streams
        )
        assert response.status == 200 and response.stream is not None
        assert response.content_type == "application/json"
        chunks = [await next_chunk(response), await next_chunk(response)]  # confirmations
        publisher = redis.asyncio.Redis.from_url(redis_url)
        try:
            assert await publisher.publish("ch2", "hello") == 1
            chunks.append(await next_chunk(response))
            await end_stream(response)  # the client went away
            deadline = asyncio.get_running_loop().time() + 5
            while True:  # poll to a deadline until Redis saw the subscription go
                numsub = dict(await publisher.pubsub_numsub("ch1"))[b"ch1"]
                if numsub == 0 or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.02)
        finally:
            await publisher.aclose()
        return chunks, numsub

    chunks, numsub = with_streams(redis_url, body)
    assert chunks == [
        b'{"SUBSCRIBE":["subscribe","ch1",1]}',
        b'{"SUBSCRIBE":["subscribe","ch2",2]}',
        b'{"SUBSCRIBE":["message","ch2","hello"]}',
    ]
    assert numsub == 0


def test_psubscribe_stream(redis_url: str, clean_redis: redis.Redis) -> None:
    async def body(client: RedisClient, streams: StreamServices) -> list[bytes]:
        response = await handle(
            req("GET", "/PSUBSCRIBE/news.*", [("jsonp", "cb")]), client, allow_all, streams=streams
        )
        chunks = [await next_chunk(response)]
        publisher = redis.asyncio.Redis.from_url(redis_url)
        try:
            await publisher.publish("news.x", "hi")
            chunks.append(await next_chunk(response))
        finally:
            await end_stream(response)
            await publisher.aclose()
        return chunks

    assert with_streams(redis_url, body) == [
        b'cb({"PSUBSCRIBE":["psubscribe","news.*",1]});\n',
        b'cb({"PSUBSCRIBE":["pmessage","news.*","news.x","hi"]});\n',
    ]
