"""``StreamRegistry``: the open streams of one worker, their limit, their drain and the
one sweeper that keeps them honest.

* ``open(kind)``: a ``StreamSlot`` (with its ``Outbox``), or None when
  ``server.max_streams`` are open (the caller answers 503). A stream opened while the
  worker drains is told to reconnect at once and ends.
* ``begin_drain()``: called when the worker starts draining (reload, stop). Every stream
  gets ``DRAIN`` at once (its writer sends the reconnect hint) and is ended at
  ``DrainPolicy.stream_drain_seconds`` whatever its client does, so no stream keeps a
  draining worker past its deadline.
* The sweeper (one task per worker, every half heartbeat, only while streams are open)
  pokes streams idle for ``server.stream_heartbeat_seconds`` (``IDLE``: a heartbeat)
  and fails those whose send has been blocked for twice that (``stalled``: the client
  stopped reading and sends no heartbeat answer either).
* ``StreamSlot.close()``: once per stream, when its writer is done; counts it closed by
  reason in the metrics (slow consumers and stalls are logged too, throttled).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Protocol

import structlog

from gateway_worker.config import ServerConfig
from gateway_worker.observability.logging import Throttle
from gateway_worker.serving.drain import DrainPolicy
from gateway_worker.streams.outbox import CLIENT, DRAIN, SHUTDOWN, SLOW_CONSUMER, STALLED, Outbox

log = structlog.get_logger("gateway_worker.streams")

#: Stream kinds (metrics label values).
UPSTASH_SSE = "upstash_sse"
UPSTASH_MONITOR = "upstash_monitor"
WEBDIS_CHUNKED = "webdis_chunked"
WEBDIS_WEBSOCKET = "webdis_websocket"
KINDS = (UPSTASH_SSE, UPSTASH_MONITOR, WEBDIS_CHUNKED, WEBDIS_WEBSOCKET)


@dataclass(frozen=True)
class StreamSettings:
    """The stream limits, decided once from ``server``."""

    max_streams: int
    drain_seconds: float
    heartbeat_seconds: float
    buffer_bytes: int

    @classmethod
    def from_config(cls, server: ServerConfig) -> StreamSettings:
        cap = server.max_streams
        return cls(
            max_streams=cap if cap is not None else max(1, server.max_connections // 2),
            drain_seconds=DrainPolicy.from_config(server).stream_drain_seconds,
            heartbeat_seconds=server.stream_heartbeat_seconds,
            buffer_bytes=server.stream_send_buffer_bytes,
        )

    @property
    def stall_seconds(self) -> float:
        """A send blocked this long means the client is gone or stopped reading."""
        return 2 * self.heartbeat_seconds


class StreamMetrics(Protocol):
    """What the registry reports (``observability.metrics.RequestMetrics``)."""

    def stream_opened(self, kind: str) -> None: ...

    def stream_closed(self, kind: str, reason: str) -> None: ...

    def stream_refused(self, kind: str) -> None: ...


class StreamSlot:
    """One open stream: its kind and outbox, until ``close()``."""

    __slots__ = ("_registry", "closed", "kind", "outbox")

    def __init__(self, registry: StreamRegistry, kind: str, outbox: Outbox) -> None:
        self._registry = registry
        self.kind = kind
        self.outbox = outbox
        self.closed = False

    @property
    def ending(self) -> bool:
        """The stream already has an end (e.g. opened while the worker drains)."""
        return self.outbox.ended is not None

    def close(self, reason: str | None = None) -> None:
        """The stream is over (``reason`` defaults to why its outbox ended)."""
        if not self.closed:
            self.closed = True
            self._registry._closed(self, reason or self.outbox.ended or CLIENT)


class StreamRegistry:
    """The worker's open streams (see the module docstring)."""

    def __init__(self, settings: StreamSettings, metrics: StreamMetrics) -> None:
        self.settings = settings
        self._metrics = metrics
        self._open: set[StreamSlot] = set()
        self.draining = False
        self._sweeper: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._log = Throttle()

    def __len__(self) -> int:
        return len(self._open)

    def open(self, kind: str) -> StreamSlot | None:
        """A slot for a new stream, or None when ``server.max_streams`` are open."""
        if len(self._open) >= self.settings.max_streams:
            self._metrics.stream_refused(kind)
            return None
        slot = StreamSlot(self, kind, Outbox(self.settings.buffer_bytes))
        self._open.add(slot)
        self._metrics.stream_opened(kind)
        if self.draining:
            slot.outbox.drain()
            slot.outbox.end(DRAIN)
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="stream-sweeper")
        return slot

    def begin_drain(self) -> None:
        """The worker drains: every stream is told to reconnect, and ended at the drain
        deadline."""
        if self.draining:
            return
        self.draining = True
        for slot in list(self._open):
            slot.outbox.drain()
        self._deadline = asyncio.get_running_loop().call_later(
            self.settings.drain_seconds, self._end_all, DRAIN
        )

    async def shutdown(self) -> None:
        """The app stops: what is still open fails (its writers return)."""
        if self._deadline is not None:
            self._deadline.cancel()
        for slot in list(self._open):
            slot.outbox.fail(SHUTDOWN)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    def _end_all(self, reason: str) -> None:
        for slot in list(self._open):
            slot.outbox.end(reason)

    def _closed(self, slot: StreamSlot, reason: str) -> None:
        self._open.discard(slot)
        self._metrics.stream_closed(slot.kind, reason)
        if reason in (SLOW_CONSUMER, STALLED):
            suppressed = self._log.admit(reason)
            if suppressed is not None:
                log.warning(
                    "stream.closed",
                    kind=slot.kind,
                    reason=reason,
                    buffer_bytes=self.settings.buffer_bytes,
                    similar_suppressed=suppressed,
                )

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        settings = self.settings
        try:
            while self._open:
                await asyncio.sleep(settings.heartbeat_seconds / 2)
                now = loop.time()
                for slot in list(self._open):
                    box = slot.outbox
                    since = box.sending_since
                    if since is not None:
                        if now - since > settings.stall_seconds:
                            box.fail(STALLED)
                    elif now - box.last_sent >= settings.heartbeat_seconds:
                        box.poke()
        finally:
            self._sweeper = None
