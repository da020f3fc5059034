"""The embedded Redis as a service: its keeper (``supervisor.workers.redis_keeper``)
ticks once per main-loop iteration, with the backoff cap of the running config.

It keeps running through a graceful stop (the draining workers still need it); the
builder's teardown stops it after the workers (``WorkerSetup.close``)."""

from __future__ import annotations

from collections.abc import Sequence

from supervisor.config import LoadedConfig
from supervisor.workers.handle import WorkerHandle
from supervisor.workers.setup import WorkerSetup


class EmbeddedRedisService:
    """Hooks: ``tick`` (supervise), ``committed`` (the backoff cap)."""

    def __init__(self, setup: WorkerSetup, loaded: LoadedConfig) -> None:
        self._setup = setup
        self._cap = loaded.config.supervisor.restart_backoff_max_seconds

    def tick(self, workers: Sequence[WorkerHandle]) -> None:
        if self._setup.embedded is not None:
            self._setup.embedded.tick(self._cap)

    def committed(self, loaded: LoadedConfig, version: int) -> None:
        self._cap = loaded.config.supervisor.restart_backoff_max_seconds
