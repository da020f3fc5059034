"""Redis access for the worker: a multiplexed fast path plus dedicated connections.

Modules: ``wire`` (RESP encoding and the reply parser), ``connection`` (one connection:
open, authenticate, read/write), ``commands`` (command classes: blocking, read-only,
connection-state), ``client`` (``RedisClient``, the ``RedisExecutor`` the app uses).
"""

from gateway_worker.redis.client import RedisClient
from gateway_worker.redis.connection import ConnectOptions

__all__ = ["ConnectOptions", "RedisClient"]
