"""WebSockets at the edge (``api.webdis_websockets``): the ASGI side of Webdis's
``<prefix>/.json`` and ``<prefix>/.raw`` (the session itself is
``protocols.webdis.websocket``).

At the handshake, as for an HTTP request: the endpoint must exist (else 404); with CORS
on, a browser's ``Origin`` must be allowed (403); authentication (401/403: headers, or
``?_token=`` since browsers cannot set headers on a WebSocket); the rate limit (429;
503 when Redis cannot be asked and the limiter fails closed); a stream slot
(``server.max_streams``, 503). Refusals are HTTP answers with a JSON body. Then every
message is one command, rate-limited and checked by the principal's guard.

The socket is a stream (kind ``webdis_websocket``): its replies and pushes queue in its
outbox, bounded by ``server.stream_send_buffer_bytes`` (a slow consumer is dropped);
uvicorn pings it every ``server.stream_heartbeat_seconds`` and closes it when a pong is
late; when the worker drains, the WebSocket protocol closes it with 1012 "service
restart" (``serving.websocket``), and the drain deadline does the same for any left.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from urllib.parse import parse_qsl

from gateway_worker.access.auth import Authenticator, AuthError
from gateway_worker.access.cors import Cors
from gateway_worker.access.policy import CommandPolicy
from gateway_worker.access.rate_limit import RateLimiter
from gateway_worker.asgi import Receive, Scope, Send
from gateway_worker.config import Config
from gateway_worker.exchange import Principal
from gateway_worker.protocols.json_bodies import json_bytes
from gateway_worker.protocols.webdis.websocket import ENDPOINTS, WebdisSocket
from gateway_worker.redis.executor import RedisExecutor
from gateway_worker.streams.outbox import CLIENT, DRAIN, END, REDIS, SHUTDOWN, Outbox, Signal
from gateway_worker.streams.registry import WEBDIS_WEBSOCKET
from gateway_worker.streams.relay import aborter
from gateway_worker.streams.services import StreamServices

#: The close each end of a socket's outbox sends (RFC 6455 codes).
_CLOSE = {DRAIN: (1012, "service restart"), REDIS: (1011, "Redis connection lost")}
_CLOSE[SHUTDOWN] = (1001, "going away")


class WebSockets:
    """The app's WebSocket endpoints (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        *,
        redis: RedisExecutor,
        auth: Authenticator,
        policy: CommandPolicy,
        limiter: RateLimiter,
        cors: Cors | None,
        streams: StreamServices,
    ) -> None:
        self.prefix = config.api.webdis_prefix
        self._redis = redis
        self._auth = auth
        self._policy = policy
        self._limiter = limiter
        self._cors = cors
        self._streams = streams
        self._max_arguments = config.server.max_arguments

    def endpoint(self, path: str) -> str | None:
        """The format served at ``path`` ("json", "raw"), or None."""
        prefix = self.prefix
        if prefix != "/":
            if not path.startswith(prefix) or (
                len(path) > len(prefix) and path[len(prefix)] != "/"
            ):
                return None
            path = path[len(prefix) :] or "/"
        return ENDPOINTS.get(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        raw: bytes | None = scope.get("raw_path")
        path = raw.decode("latin-1") if raw else scope["path"]
        fmt = self.endpoint(path)
        if fmt is None:
            endpoints = f"{self.prefix.rstrip('/')}/.json or {self.prefix.rstrip('/')}/.raw"
            await _refuse(send, 404, f"no WebSocket endpoint at {path} (use {endpoints})")
            return
        principal = await self._admit(scope, send)
        if principal is None:
            return
        slot = self._streams.registry.open(WEBDIS_WEBSOCKET)
        if slot is None:
            limit = self._streams.settings.max_streams
            await _refuse(send, 503, f"too many streams: server.max_streams={limit} are open")
            return
        try:
            await send({"type": "websocket.accept"})
            if slot.ending:  # opened while the worker drains: straight to the new workers
                code, reason = _CLOSE[DRAIN]
                await send({"type": "websocket.close", "code": code, "reason": reason})
                return
            guard = self._policy.guard_for(principal)
            session = WebdisSocket(
                fmt,
                redis=self._redis,
                guard=guard,
                pubsub=self._streams.pubsub,
                outbox=slot.outbox,
                max_arguments=self._max_arguments,
            )
            await self._run(session, principal, receive, send)
        finally:
            slot.close()

    async def _admit(self, scope: Scope, send: Send) -> Principal | None:
        """The handshake's checks; None when refused (the refusal is sent)."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if self._cors is not None and origin is not None and not self._cors.origin_allowed(origin):
            await _refuse(send, 403, f"origin {origin} is not allowed (server.cors)")
            return None
        qs: bytes = scope.get("query_string", b"")
        query = parse_qsl(qs.decode("latin-1"), keep_blank_values=True) if qs else []
        client = scope.get("client")
        try:
            principal = self._auth.authenticate(headers, query, client[0] if client else "")
        except AuthError as exc:
            await _refuse(send, exc.status, exc.message)
            return None
        refusal = await self._rate_limit(principal)
        if refusal is not None:
            await _refuse(send, 429 if "rate limit" in refusal else 503, refusal)
            return None
        return principal

    async def _rate_limit(self, principal: Principal) -> str | None:
        if not self._limiter.enabled:
            return None
        decision = await self._limiter.check(principal)
        if decision.allowed:
            return None
        if decision.unavailable:
            return "Redis unavailable: the rate limiter cannot be asked"
        return f"rate limit exceeded: retry after {math.ceil(decision.retry_after_seconds or 1)}s"

    async def _run(
        self, session: WebdisSocket, principal: Principal, receive: Receive, send: Send
    ) -> None:
        box = session.outbox
        box.abort = aborter(send)
        reader = asyncio.create_task(self._read(session, box, principal, receive))
        try:
            await _write(session.fmt, box, send)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            box.abort = None
            await session.close()

    async def _read(
        self, session: WebdisSocket, box: Outbox, principal: Principal, receive: Receive
    ) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                # Closed by the client, or by the server's drain (code 1012): nothing
                # more may be sent on it, not even what is queued.
                box.abort = None
                box.fail(DRAIN if self._streams.registry.draining else CLIENT)
                return
            if message["type"] != "websocket.receive":
                continue
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            refusal = await self._rate_limit(principal)
            if refusal is not None:
                session.push(session.error(refusal))
                continue
            await session.handle(data)


async def _write(fmt: str, box: Outbox, send: Send) -> None:
    """Send the socket's outbox until it ends; then close it (unless it failed)."""
    loop = asyncio.get_running_loop()
    key = "bytes" if fmt == "raw" else "text"
    with contextlib.suppress(OSError):  # uvicorn's ClientDisconnected: the client left
        while True:
            item = await box.next()
            if item is END:
                break
            if isinstance(item, Signal):
                continue  # heartbeats are uvicorn's pings; the drain's close is its too
            box.sending_since = loop.time()
            await send({"type": "websocket.send", key: item if key == "bytes" else item.decode()})
            box.sending_since = None
            box.last_sent = loop.time()
        if not box.failed:
            code, reason = _CLOSE.get(box.ended or "", (1000, ""))
            await send({"type": "websocket.close", "code": code, "reason": reason})


async def _refuse(send: Send, status: int, message: str) -> None:
    """Refuse the handshake with an HTTP answer (uvicorn's ``websocket.http.response``)."""
    body = json_bytes({"error": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})
