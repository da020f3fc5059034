"""Redis access for the worker: a multiplexed fast path plus dedicated connections.

Modules:

* ``values``: the RESP reply values as handlers see them (``Status``, ``ReplyError``,
  ``NIL_ARRAY``, ``RespValue``).
* ``executor``: the ``RedisExecutor`` interface handlers talk to, and the
  ``RedisBackend`` the app owns (lifecycle, readiness).
* ``wire``: RESP2 bytes: command encoding, reply encoding and the reply parser.
* ``connection``: one connection (open, TLS, authenticate, read/write).
* ``shared``: the multiplexed connections, one per target (database or node).
* ``dedicated_pool``: connections lent to one request (blocking, MULTI, pub/sub).
* ``batches``: pipelines and MULTI/EXEC on one dedicated connection.
* ``commands``: the command table (blocking, read-only, connection-state).
* ``scripts``: the script guard (SCRIPT KILL / FUNCTION KILL past the command timeout).
* ``client``: ``RedisClient``, the standalone backend.
* ``topology``: ``build_backend``, the backend for ``redis.mode``.
"""

from gateway_worker.redis.client import RedisClient
from gateway_worker.redis.connection import ConnectOptions

__all__ = ["ConnectOptions", "RedisClient"]
