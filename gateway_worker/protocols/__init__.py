"""Protocol handlers: each turns a ``Request`` into Redis calls and a ``Response``.

* ``upstash/``: the Upstash-compatible REST protocol (API.md §1).
* ``webdis/``: the Webdis-compatible URL protocol (API.md §2).
* ``json_bodies``: JSON bodies shared by the protocols (compact JSON, ``{"error": ...}``).

A handler has the shape ``async handle(request, redis, guard) -> Response``; the app
(``gateway_worker.app``) mounts each under its configured prefix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway_worker.exchange import CommandGuard, Request, Response
from gateway_worker.redis.executor import RedisExecutor

#: What the app calls for a request routed to a protocol.
Handler = Callable[[Request, RedisExecutor, CommandGuard], Awaitable[Response]]

__all__ = ["Handler"]
