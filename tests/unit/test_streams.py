"""Stream plumbing without a network: the bounded outbox and its signals, the registry
(limit, drain, heartbeats, stalled clients, metrics) and the SSE format."""

from __future__ import annotations

import asyncio

import pytest

from gateway_worker.streams import sse
from gateway_worker.streams.outbox import (
    DRAIN,
    DRAINING,
    END,
    IDLE,
    SLOW_CONSUMER,
    STALLED,
    Outbox,
)
from gateway_worker.streams.registry import StreamRegistry, StreamSettings
from tests.fakes import FakeMetrics


def settings(**over: float) -> StreamSettings:
    values: dict[str, float] = {
        "max_streams": 2,
        "drain_seconds": 0.2,
        "heartbeat_seconds": 0.1,
        "buffer_bytes": 10,
    }
    values.update(over)
    return StreamSettings(
        max_streams=int(values["max_streams"]),
        drain_seconds=values["drain_seconds"],
        heartbeat_seconds=values["heartbeat_seconds"],
        buffer_bytes=int(values["buffer_bytes"]),
    )


def test_outbox_order_bound_and_signals() -> None:
    async def scenario() -> None:
        aborted: list[str] = []
        box = Outbox(limit=10)
        box.abort = lambda: aborted.append("abort")
        box.put(b"12345")
        box.put(b"67890")
        assert box.queued == 10
        assert await box.next() == b"12345"
        box.drain()  # delivered before what is still queued
        assert await box.next() is DRAINING
        assert await box.next() == b"67890"
        box.poke()
        assert await box.next() is IDLE
        box.put(b"x" * 50)  # alone, a chunk may exceed the bound (a big message)
        assert await box.next() == b"x" * 50
        box.put(b"123456")
        box.put(b"7890!")  # 11 bytes queued: the client reads too slowly
        assert box.ended == SLOW_CONSUMER and box.failed and box.queued == 0
        assert aborted == ["abort"]
        assert await box.next() is END
        box.put(b"late")
        assert box.queued == 0

    asyncio.run(scenario())


def test_outbox_end_sends_what_is_queued_first() -> None:
    async def scenario() -> None:
        box = Outbox(limit=100)
        box.put(b"a")
        box.end(DRAIN)
        box.end("client")  # the first reason wins
        assert await box.next() == b"a"
        assert await box.next() is END and box.ended == DRAIN and not box.failed

    asyncio.run(scenario())


def test_registry_limit_drain_and_metrics() -> None:
    async def scenario() -> None:
        metrics = FakeMetrics()
        registry = StreamRegistry(settings(heartbeat_seconds=10), metrics)
        first, second = registry.open("upstash_sse"), registry.open("webdis_chunked")
        assert first is not None and second is not None
        assert registry.open("upstash_sse") is None  # server.max_streams = 2
        assert metrics.refused == ["upstash_sse"]
        loop = asyncio.get_running_loop()
        started = loop.time()
        registry.begin_drain()
        assert await first.outbox.next() is DRAINING  # the reconnect hint, at once
        assert await first.outbox.next() is END  # then the close, at the drain deadline
        assert loop.time() - started == pytest.approx(0.2, abs=0.1)
        assert first.outbox.ended == DRAIN
        first.close()
        second.close()
        late = registry.open("upstash_sse")  # opened while draining: told to go at once
        assert late is not None and late.ending
        assert await late.outbox.next() is DRAINING and await late.outbox.next() is END
        late.close()
        late.close()  # once only
        assert metrics.opened == ["upstash_sse", "webdis_chunked", "upstash_sse"]
        assert metrics.closed == [
            ("upstash_sse", "drain"),
            ("webdis_chunked", "drain"),
            ("upstash_sse", "drain"),
        ]
        assert len(registry) == 0
        await registry.shutdown()

    asyncio.run(scenario())


def test_the_sweeper_sends_heartbeats_and_fails_stalled_sends() -> None:
    async def scenario() -> None:
        registry = StreamRegistry(settings(heartbeat_seconds=0.1), FakeMetrics())
        quiet, stuck = registry.open("upstash_sse"), registry.open("upstash_sse")
        assert quiet is not None and stuck is not None
        loop = asyncio.get_running_loop()
        stuck.outbox.sending_since = loop.time()  # a send that never returns
        started = loop.time()
        assert await asyncio.wait_for(quiet.outbox.next(), 1) is IDLE
        assert loop.time() - started >= 0.1
        quiet.outbox.last_sent = loop.time()
        assert await asyncio.wait_for(stuck.outbox.next(), 1) is END
        assert stuck.outbox.ended == STALLED and loop.time() - started > 0.2
        assert quiet.outbox.ended is None  # a quiet stream is not cut
        await registry.shutdown()
        assert quiet.outbox.ended == "shutdown"

    asyncio.run(scenario())


def test_sse_format() -> None:
    assert sse.event(b"message,chat,hi") == b"data: message,chat,hi\n\n"
    # Line breaks become data: lines (a client joins them back with \n).
    assert sse.event(b"a\r\nb\rc\nd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    hint = sse.reconnect()
    head, _, rest = hint.partition(b"\n")
    assert head.startswith(b"retry: ") and rest == b"event: reconnect\ndata: reconnect\n\n"
    low, high = sse.RECONNECT_RETRY_MS
    assert low <= int(head.removeprefix(b"retry: ")) < high
    assert sse.HEARTBEAT.startswith(b":")
