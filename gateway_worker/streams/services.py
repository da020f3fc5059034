"""``StreamServices``: what a protocol handler needs to open streams, built once per
worker by the app: the registry (limits, drain), the pub/sub hub and MONITOR feeds."""

from __future__ import annotations

from collections.abc import Callable

from gateway_worker.config import Config
from gateway_worker.redis.connection import ConnectOptions
from gateway_worker.redis.monitor import MonitorFeed, MonitorSink, open_monitor
from gateway_worker.redis.pubsub import PubSub
from gateway_worker.streams.registry import StreamMetrics, StreamRegistry, StreamSettings


class StreamServices:
    """The worker's stream registry and stream sources."""

    def __init__(
        self, config: Config, target: Callable[[], ConnectOptions], metrics: StreamMetrics
    ) -> None:
        """``target``: where stream connections go now (``RedisBackend.stream_options``;
        it moves with a sentinel failover)."""
        self.settings = StreamSettings.from_config(config.server)
        self.registry = StreamRegistry(self.settings, metrics)
        self._target = target
        self._timeout = config.redis.command_timeout_seconds
        self.pubsub = PubSub(target, self._timeout)

    async def open_monitor(self, sink: MonitorSink) -> MonitorFeed:
        """A MONITOR feed on a connection of its own (``redis.monitor``)."""
        return await open_monitor(self._target(), sink, self._timeout)

    async def close(self) -> None:
        """At app shutdown: end what is still open, close the hub's connection."""
        await self.registry.shutdown()
        await self.pubsub.close()
