"""ASGI app assembly.

Interface used by the worker entry point (and nothing else may be assumed):
``build_app(config) -> GatewayApp``; ``await app.startup()`` (raises ``BootError``
when Redis does not answer); the app is an ASGI callable served with
``lifespan="off"``; ``await app.shutdown()`` after serving.

This first version is minimal (healthz, readyz, GET/SET/INCR); the protocol
modules replace its routing without changing this interface.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from gateway_worker.config import Config

Scope = dict[str, Any]


class BootError(Exception):
    """The app cannot start (Redis unreachable, bad TLS files, ...)."""


class GatewayApp:
    """The worker's ASGI application."""

    def __init__(self, config: Config) -> None:
        self.config = config
        url = config.redis.url or "redis://127.0.0.1:6379"
        pw = config.redis.default_password
        self._redis = aioredis.Redis.from_url(
            url,
            db=config.redis.db,
            password=pw.get_secret_value() if pw else None,
            socket_connect_timeout=config.redis.connection_timeout_seconds,
            socket_timeout=config.redis.command_timeout_seconds,
        )

    async def startup(self) -> None:
        try:
            await self._redis.ping()
        except Exception as exc:
            raise BootError(f"Redis did not answer PING: {type(exc).__name__}: {exc}") from exc

    async def shutdown(self) -> None:
        await self._redis.aclose()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        status, body = await self._route(path)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    async def _route(self, path: str) -> tuple[int, Any]:
        if path == "/healthz":
            return 200, {"status": "ok"}
        parts = [p for p in path.split("/") if p]
        try:
            if path == "/readyz":
                await self._redis.ping()
                return 200, {"status": "ready"}
            if len(parts) == 2 and parts[0].lower() == "get":
                v = await self._redis.get(parts[1])
                v = v.encode() if isinstance(v, str) else v
                return 200, {"result": v.decode() if v is not None else None}
            if len(parts) == 3 and parts[0].lower() == "set":
                await self._redis.set(parts[1], parts[2])
                return 200, {"result": "OK"}
            if len(parts) == 2 and parts[0].lower() == "incr":
                return 200, {"result": await self._redis.incr(parts[1])}
        except aioredis.RedisError as exc:
            return 503, {"error": f"Redis unavailable: {exc}"}
        return 404, {"error": f"no route for {path}"}


def build_app(config: Config) -> GatewayApp:
    """Assemble the worker's ASGI app for ``config``."""
    return GatewayApp(config)
