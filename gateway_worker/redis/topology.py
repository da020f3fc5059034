"""``build_backend(cfg)``: the ``RedisBackend`` for ``redis.mode``.

* ``standalone``: ``client.RedisClient`` on ``redis.url``;
* ``cluster``: ``cluster.client.ClusterClient`` on the seed nodes ``redis.nodes``;
* ``sentinel``: ``sentinel.client.SentinelClient``, the master ``redis.sentinel_master``
  as the sentinels ``redis.nodes`` name it.

Protocol handlers and the app only see the ``RedisExecutor`` / ``RedisBackend``
interfaces (``executor``): a topology changes nothing above this package.

The cluster and Sentinel clients are imported only for their mode: a standalone
worker never loads them (~0.5 MB of its RSS, 14 modules).
"""

from __future__ import annotations

from gateway_worker.config import RedisConfig
from gateway_worker.redis.client import RedisClient
from gateway_worker.redis.executor import ErrorHook, RedisBackend


def build_backend(cfg: RedisConfig, on_error: ErrorHook | None = None) -> RedisBackend:
    """The backend for ``cfg.mode`` (see the module docstring)."""
    if cfg.mode == "cluster":
        from gateway_worker.redis.cluster.client import ClusterClient

        return ClusterClient(cfg, on_error=on_error)
    if cfg.mode == "sentinel":
        from gateway_worker.redis.sentinel.client import SentinelClient

        return SentinelClient(cfg, on_error=on_error)
    return RedisClient(cfg, on_error=on_error)
