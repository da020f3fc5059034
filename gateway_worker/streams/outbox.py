"""``Outbox``: what one stream still has to send, bounded in bytes, and the signals its
writer acts on.

The stream's source (the pub/sub hub, a MONITOR feed, a WebSocket's replies) ``put``s
rendered chunks without ever waiting; the stream's writer (``streams.relay`` for HTTP,
the WebSocket adapter) takes them with ``next()`` and sends them, waiting for the client
as long as the transport's flow control says so. A client that reads slower than its
messages arrive fills the outbox: one chunk more than ``limit`` bytes *fails* the stream
(``slow_consumer``), drops what was queued and aborts the connection, so a slow consumer
costs at most ``limit`` bytes plus the transport's own buffer, never the worker's memory.

Everything else that can happen to a stream also arrives here, so a writer waits on one
thing only: ``next()`` returns a chunk, or one of the signals

* ``IDLE``: nothing was sent for ``server.stream_heartbeat_seconds`` (send a heartbeat);
* ``DRAIN``: the worker drains (tell the client to reconnect; the stream stays open
  until the drain deadline ends it);
* ``END``: the stream is over (``ended`` says why); queued chunks were sent first unless
  it *failed*.

The registry's sweeper (``streams.registry``) sends ``IDLE`` and fails a stream whose
send has been blocked too long (``stalled``), using ``sending_since``/``last_sent``,
which the writer keeps up to date: one timer per worker, not one per stream or message.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable

# Why a stream ended (metrics label values; bounded).
CLIENT = "client"  # the client went away or closed it
DRAIN = "drain"  # the worker drained (reload, stop)
SLOW_CONSUMER = "slow_consumer"  # more than server.stream_send_buffer_bytes queued
STALLED = "stalled"  # one send blocked for twice server.stream_heartbeat_seconds
REDIS = "redis"  # the Redis connection feeding it was lost
SHUTDOWN = "shutdown"  # the app shut down under it
ERROR = "error"  # an unexpected error while sending
REASONS = (CLIENT, DRAIN, SLOW_CONSUMER, STALLED, REDIS, SHUTDOWN, ERROR)


class Signal(enum.Enum):
    """What ``Outbox.next`` returns instead of a chunk."""

    IDLE = "idle"
    DRAIN = "drain"
    END = "end"


IDLE, DRAINING, END = Signal.IDLE, Signal.DRAIN, Signal.END


class Outbox:
    """A stream's queue of chunks (see the module docstring)."""

    __slots__ = (
        "_chunks",
        "_drain",
        "_idle",
        "_loop",
        "_size",
        "_waiter",
        "abort",
        "ended",
        "failed",
        "last_sent",
        "limit",
        "sending_since",
    )

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.limit = limit
        self._loop = loop or asyncio.get_running_loop()
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._drain = False  # DRAIN to deliver
        self._idle = False  # IDLE to deliver
        #: Why the stream ended (one of ``REASONS``), None while it runs.
        self.ended: str | None = None
        #: True when it ended at once (queued chunks dropped, connection aborted).
        self.failed = False
        #: Set by the writer: when its current send began (None: not sending) ...
        self.sending_since: float | None = None
        #: ... and when it last finished one.
        self.last_sent = self._loop.time()
        #: Set by the writer: drops the client's connection (a blocked send returns).
        self.abort: Callable[[], None] | None = None

    @property
    def queued(self) -> int:
        """Bytes waiting to be sent."""
        return self._size

    def put(self, chunk: bytes) -> None:
        """Queue ``chunk``; past ``limit`` the stream fails as a slow consumer. A chunk
        alone may exceed the limit (a big message to a client that keeps up)."""
        if self.ended is not None:
            return
        size = self._size + len(chunk)
        if size > self.limit and self._chunks:
            self.fail(SLOW_CONSUMER)
            return
        self._chunks.append(chunk)
        self._size = size
        self._wake()

    def end(self, reason: str) -> None:
        """End after what is queued (first reason wins)."""
        if self.ended is None:
            self.ended = reason
            self._wake()

    def fail(self, reason: str) -> None:
        """End at once: drop what is queued and abort the client's connection, so that
        a writer blocked on a client that does not read returns."""
        if self.ended is not None and self.failed:
            return
        self.ended = self.ended or reason
        self.failed = True
        self._chunks.clear()
        self._size = 0
        self._wake()
        if self.abort is not None:
            self.abort()

    def drain(self) -> None:
        """The worker drains: ``next()`` returns ``DRAIN`` once, before further chunks."""
        if self.ended is None:
            self._drain = True
            self._wake()

    def poke(self) -> None:
        """Nothing was sent for a heartbeat interval: ``next()`` returns ``IDLE``."""
        if self.ended is None and not self._chunks:
            self._idle = True
            self._wake()

    async def next(self) -> bytes | Signal:
        """The next chunk or signal (see the module docstring)."""
        while True:
            if self.failed:
                return END
            if self._drain:
                self._drain = False
                return DRAINING
            chunks = self._chunks
            if chunks:
                chunk = chunks.popleft()
                self._size -= len(chunk)
                return chunk
            if self.ended is not None:
                return END
            if self._idle:
                self._idle = False
                return IDLE
            self._waiter = waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
