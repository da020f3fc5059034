"""``open_monitor``: a Redis ``MONITOR`` feed on a connection of its own.

MONITOR turns a connection into a one-way feed of every command Redis runs, so each
feed needs its own connection; it is opened outside the ``redis.pool_max_size`` pool
(a feed lives as long as its client likes and would starve blocking commands and
transactions of their connections). The number of feeds is bounded by the streams
limit (``server.max_streams``), which the caller applies.

Interface::

    feed = await open_monitor(options, sink, timeout)   # RedisUnavailable; MonitorRefused
    ...                                                # sink.line(b"1721284005.242090 [0 ...] ...")
    await feed.close()

Redis clients of the "normal" class have no output-buffer limit: the feed is read as
fast as it comes, and the sink (a stream's bounded buffer) decides what to do with a
client that cannot keep up.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.connection import ConnectOptions, RespConnection, open_connection
from gateway_worker.redis.values import ReplyError


class MonitorSink(Protocol):
    """Where a feed's lines go."""

    def line(self, text: bytes) -> None: ...

    def ended(self, reason: str) -> None: ...


class MonitorRefused(Exception):
    """Redis answered MONITOR with an error (e.g. its ACL): ``reply``."""

    def __init__(self, reply: ReplyError) -> None:
        super().__init__(str(reply))
        self.reply = reply


class MonitorFeed:
    """One open MONITOR connection and the task reading it."""

    def __init__(self, conn: RespConnection, sink: MonitorSink) -> None:
        self._conn = conn
        self._sink = sink
        self._task = asyncio.create_task(self._read(), name="redis-monitor")

    async def _read(self) -> None:
        try:
            while True:
                line = await self._conn.read(None)
                if isinstance(line, bytes):
                    self._sink.line(line)
        except RedisUnavailable:
            self._sink.ended("redis")

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._conn.close()
        await self._conn.wait_closed()


async def open_monitor(options: ConnectOptions, sink: MonitorSink, timeout: float) -> MonitorFeed:
    """Connect, send MONITOR and start feeding ``sink`` once Redis said OK."""
    conn = await open_connection(options, dedicated=True)
    try:
        reply = await conn.execute([b"MONITOR"], timeout)
    except BaseException:
        conn.close()
        raise
    if isinstance(reply, ReplyError):
        conn.close()
        raise MonitorRefused(reply)
    return MonitorFeed(conn, sink)
