"""What a worker receives from the supervisor besides its listening sockets: its config
(the embedded Redis URL and the control socket path filled in) and its environment
(the supervisor's, without any ``REDIS_GATEWAY_*`` variable, plus the metrics
multiprocess directory).

The whole config, secrets included, reaches a worker over its private config pipe
(``gateway_worker.contract``); a ``REDIS_GATEWAY_AUTH__JWT_SECRET`` left in its
environment would only be readable in ``/proc/<pid>/environ`` (issue 8).

Both may change with a reload: a reload may turn metrics on (the directory is created
before the first worker that needs it), or switch to the ``dev`` profile without
``redis.url`` (the embedded Redis is started then). prometheus-client is imported only
once metrics are on (issue 3, RSS target).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from gateway_worker.config import Config
from supervisor.config.schema import ENV_PREFIX
from supervisor.workers.redis_keeper import EmbeddedRedisKeeper

if TYPE_CHECKING:
    from supervisor.metrics_workers import MultiprocessDir


def wants_embedded_redis(config: Config) -> bool:
    redis = config.redis
    return config.profile == "dev" and redis.uses_embedded and config.supervisor.embedded_redis


class WorkerSetup:
    """Config and environment of every worker (a ``generations.ConfigPreparer``)."""

    def __init__(self, control_path: str) -> None:
        self.control_path = control_path
        self.embedded: EmbeddedRedisKeeper | None = None
        self.multiproc: MultiprocessDir | None = None

    def start_embedded_redis(self) -> EmbeddedRedisKeeper:
        """Start it if it is not running (raises ``EmbeddedRedisError``); from then on
        ``supervisor.services.embedded_redis`` keeps it running."""
        if self.embedded is None:
            keeper = EmbeddedRedisKeeper()
            keeper.start()
            self.embedded = keeper
        return self.embedded

    def embedded_status(self) -> dict[str, object] | None:
        """The embedded Redis in `redis-gateway status` (None: there is none)."""
        return self.embedded.describe() if self.embedded is not None else None

    def ensure_multiproc(self, config: Config) -> MultiprocessDir | None:
        """Workers started for a config with metrics on write their samples here."""
        if self.multiproc is None and config.observability.metrics.enabled:
            from supervisor.metrics_workers import MultiprocessDir

            self.multiproc = MultiprocessDir()
        return self.multiproc

    def prepare(self, config: Config) -> Config:
        """The config a worker receives: embedded Redis URL and control socket filled in."""
        # Before any worker for this config is spawned (a reload may turn metrics on).
        self.ensure_multiproc(config)
        redis = config.redis
        if wants_embedded_redis(config):
            redis = redis.model_copy(update={"url": self.start_embedded_redis().url})
        return config.model_copy(
            update={
                "redis": redis,
                "supervisor": config.supervisor.model_copy(
                    update={"control_socket": self.control_path}
                ),
            }
        )

    def env(self) -> dict[str, str]:
        """The environment of a worker process: no config variable (``REDIS_GATEWAY_*``,
        secrets among them); the worker gets its whole config over the pipe."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        if self.multiproc is not None:
            env.update(self.multiproc.env())
        return env

    def worker_exited(self, pid: int) -> None:
        """Fold a reaped worker's metric samples (if metrics were ever on)."""
        if self.multiproc is not None:
            self.multiproc.worker_exited(pid)

    def close(self) -> None:
        if self.multiproc is not None:
            self.multiproc.cleanup()
        if self.embedded is not None:
            self.embedded.close()
