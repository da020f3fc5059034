"""The worker's pub/sub hub and MONITOR feeds (gateway_worker.redis.pubsub, .monitor)
against a real Redis: one connection for every subscriber, Redis's order of events,
unsubscribing what nobody wants, refusals, and losing Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis

from gateway_worker.config import RedisConfig
from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.connection import ConnectOptions
from gateway_worker.redis.monitor import MonitorRefused, open_monitor
from gateway_worker.redis.pubsub import CHANNELS, PATTERNS, PubSub, PubSubRefused
from tests.helpers import async_wait_until

pytestmark = pytest.mark.integration


class Recorder:
    """A sink that keeps every event, as tuples."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def subscribed(self, kind: bytes, name: bytes, count: int) -> None:
        self.events.append((kind.decode(), name, count))

    def unsubscribed(self, kind: bytes, name: bytes, count: int) -> None:
        self.events.append(("un" + kind.decode(), name, count))

    def message(self, pattern: bytes | None, channel: bytes, payload: bytes) -> None:
        self.events.append(("message", pattern, channel, payload))

    def ended(self, reason: str) -> None:
        self.events.append(("ended", reason))

    def line(self, text: bytes) -> None:
        self.events.append(("line", text))

    def lines(self) -> list[bytes]:
        return [e[1] for e in self.events if e[0] == "line"]  # type: ignore[misc]

    def messages(self) -> list[bytes]:
        return [e[3] for e in self.events if e[0] == "message"]  # type: ignore[misc]


def options(url: str, **extra: object) -> ConnectOptions:
    return ConnectOptions.from_config(RedisConfig.model_validate({"url": url, **extra}))


@pytest.fixture
def admin(clean_redis: redis.Redis) -> Iterator[redis.Redis]:
    yield clean_redis


def numsub(admin: redis.Redis, channel: str) -> int:
    return int(dict(admin.pubsub_numsub(channel))[channel.encode()])


def test_subscribers_share_one_connection_and_hear_redis_order(
    redis_url: str, admin: redis.Redis
) -> None:
    async def scenario() -> None:
        hub = PubSub(options(redis_url), timeout=2.0)
        a, b = Recorder(), Recorder()
        sub_a, sub_b = hub.subscriber(a), hub.subscriber(b)
        await sub_a.subscribe(CHANNELS, [b"news", b"chat"])
        await sub_b.subscribe(CHANNELS, [b"news"])
        # One Redis subscriber for both streams; each stream counts its own names.
        assert numsub(admin, "news") == 1 and numsub(admin, "chat") == 1
        assert a.events == [("subscribe", b"news", 1), ("subscribe", b"chat", 2)]
        assert b.events == [("subscribe", b"news", 1)]
        # Published right after the confirmation: delivered (no message is lost between).
        admin.publish("news", "n1")
        admin.publish("chat", "c1")
        await async_wait_until(lambda: len(a.messages()) == 2 and b.messages(), timeout=5)
        assert a.messages() == [b"n1", b"c1"] and b.messages() == [b"n1"]
        await sub_a.unsubscribe(CHANNELS, [b"chat"])
        assert a.events[-1] == ("unsubscribe", b"chat", 1)
        await async_wait_until(lambda: numsub(admin, "chat") == 0, timeout=5)
        await sub_a.close()
        assert numsub(admin, "news") == 1  # b still wants it
        await sub_b.close()
        await async_wait_until(lambda: numsub(admin, "news") == 0, timeout=5)
        assert hub.names == 0
        await hub.close()

    asyncio.run(scenario())


def test_patterns_and_a_subscriber_gone_before_its_confirmation(
    redis_url: str, admin: redis.Redis
) -> None:
    async def scenario() -> None:
        hub = PubSub(options(redis_url), timeout=2.0)
        rec = Recorder()
        sub = hub.subscriber(rec)
        await sub.subscribe(PATTERNS, [b"news.*"])
        admin.publish("news.eu", "hello")
        await async_wait_until(rec.messages, timeout=5)
        assert rec.events == [
            ("psubscribe", b"news.*", 1),
            ("message", b"news.*", b"news.eu", b"hello"),
        ]
        # A subscriber that leaves while Redis has not confirmed yet: the hub drops the
        # name once the confirmation arrives.
        late = hub.subscriber(Recorder())
        task = asyncio.create_task(late.subscribe(CHANNELS, [b"brief"]))
        await asyncio.sleep(0)
        await late.close()
        await task
        await async_wait_until(lambda: numsub(admin, "brief") == 0 and hub.names == 1, timeout=5)
        await sub.close()
        await hub.close()

    asyncio.run(scenario())


def test_losing_redis_ends_every_subscriber_and_the_next_one_reconnects(
    redis_url: str, admin: redis.Redis
) -> None:
    async def scenario() -> None:
        hub = PubSub(options(redis_url), timeout=2.0)
        rec = Recorder()
        sub = hub.subscriber(rec)
        await sub.subscribe(CHANNELS, [b"x"])
        admin.client_kill_filter(_type="pubsub")
        await async_wait_until(lambda: rec.events[-1] == ("ended", "redis"), timeout=5)
        again = Recorder()
        await hub.subscriber(again).subscribe(CHANNELS, [b"x"])
        admin.publish("x", "back")
        await async_wait_until(again.messages, timeout=5)
        assert ("message", None, b"x", b"back") not in rec.events
        await hub.close()

    asyncio.run(scenario())


def test_redis_refusals_and_an_unreachable_redis(redis_url: str, admin: redis.Redis) -> None:
    admin.acl_setuser(
        "narrow",
        enabled=True,
        passwords=["+narrow-password-1"],
        keys=["*"],
        channels=["allowed:*"],
        commands=["+@all", "-monitor"],
        reset=True,
    )

    async def scenario() -> None:
        narrow = options(redis_url, username="narrow", default_password="narrow-password-1")
        hub = PubSub(narrow, timeout=2.0)
        sub = hub.subscriber(Recorder())
        with pytest.raises(PubSubRefused, match="NOPERM"):
            await sub.subscribe(CHANNELS, [b"allowed:a", b"secret"])
        ok = Recorder()
        await hub.subscriber(ok).subscribe(CHANNELS, [b"allowed:a"])
        assert ok.events == [("subscribe", b"allowed:a", 1)]
        with pytest.raises(MonitorRefused, match="NOPERM"):
            await open_monitor(narrow, Recorder(), 2.0)
        await hub.close()
        gone = PubSub(options("redis://127.0.0.1:1"), timeout=1.0)
        with pytest.raises(RedisUnavailable):
            await gone.subscriber(Recorder()).subscribe(CHANNELS, [b"x"])

    try:
        asyncio.run(scenario())
    finally:
        admin.acl_deluser("narrow")


def test_monitor_feeds_every_command(redis_url: str, admin: redis.Redis) -> None:
    async def scenario() -> None:
        rec = Recorder()
        feed = await open_monitor(options(redis_url), rec, 2.0)
        admin.set("monitored", "v")
        await async_wait_until(
            lambda: any(b'"monitored" "v"' in line for line in rec.lines()), timeout=5
        )
        await feed.close()
        assert not any(e[0] == "ended" for e in rec.events)

    asyncio.run(scenario())
