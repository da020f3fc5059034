"""ASGI app assembly: routes and the order of the cross-cutting steps.

Interface used by the worker entry point (and nothing else may be assumed):
``build_app(config) -> GatewayApp``; ``await app.startup()`` (raises ``BootError``
when Redis does not answer PING, or tracing is on without its SDK); the app is an
ASGI callable served with ``lifespan="off"``, and ``app.serve_exchange`` takes an HTTP
request without ASGI (``asgi.HttpExchange``: how the native engine calls it);
``await app.shutdown()`` after serving.

Order of the steps for one HTTP request (each may answer on its own):

1. ``/healthz`` (liveness: the loop answers) and ``/readyz`` (Redis answers PING
   within the command timeout, else 503): no auth, no metrics.
2. CORS preflight (``OPTIONS`` with ``Access-Control-Request-Method``) when enabled.
3. ``X-HTTP-Method-Override`` on POST when ``features.method_override``.
4. Body limit (``server.max_body_bytes``, 413), reading the body under the limit.
5. Authentication (401/403, JSON).
6. Rate limit (429 with ``Retry-After``; 503 when Redis cannot be asked and the
   limiter fails closed).
7. ``/admin/*`` when ``features.admin_endpoints`` (admin principal only, else 403).
8. Dispatch by mount prefix (``api.upstash_prefix`` / ``api.webdis_prefix``, longest
   prefix wins; a disabled protocol is not mounted; no match is 404).
9. The protocol handler, with the principal's command guard.
10. CORS response headers.
Steps 2-9 run under ``server.request_timeout_seconds`` (504, JSON; see
``limits.RequestDeadlines``; 408 if the body was still arriving); Redis being
unreachable is 503 ``{"error": "Redis unavailable: ..."}``; a script stopped (or that
could not be stopped) past ``redis.command_timeout_seconds`` is 504 with what happened
(``gateway_worker.redis.scripts``); an unexpected exception is
500 with a generic message (the traceback only with ``features.debug_mode``). Every
response has a JSON body, except Webdis raw/text formats and Upstash ``resp2``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import time
from typing import cast
from urllib.parse import parse_qsl

import structlog

from gateway_worker.access.auth import Authenticator, AuthError
from gateway_worker.access.cors import Cors
from gateway_worker.access.policy import CommandPolicy
from gateway_worker.access.rate_limit import RateLimiter
from gateway_worker.app.admin import Admin
from gateway_worker.app.limits import BodyTooLarge, ClientGone, RequestDeadlines, read_body
from gateway_worker.app.responses import AsgiExchange, internal_error, rate_limited, stream_head
from gateway_worker.asgi import ASGIApp, HttpExchange, Receive, Scope, Send
from gateway_worker.config import Config
from gateway_worker.errors import GatewayError, RedisUnavailable, ScriptTimeout
from gateway_worker.exchange import CommandGuard, Request, Response
from gateway_worker.observability import metrics
from gateway_worker.observability.tracing import Span, Tracing, TracingUnavailable
from gateway_worker.protocols import Handler
from gateway_worker.protocols.json_bodies import error_response, json_bytes
from gateway_worker.protocols.upstash import Upstash
from gateway_worker.redis.executor import RedisExecutor
from gateway_worker.redis.topology import build_backend
from gateway_worker.streams.relay import relay
from gateway_worker.streams.services import StreamServices

log = structlog.get_logger("gateway_worker.app")

_JSON = "application/json"
_HEALTHY = b'{"status":"ok"}'
_READY = b'{"status":"ready"}'


class BootError(GatewayError):
    """The app cannot start (Redis unreachable, tracing SDK missing, ...)."""


def _load_webdis(max_arguments: int, streams: StreamServices) -> Handler | None:
    try:
        module = importlib.import_module("gateway_worker.protocols.webdis")
    except ModuleNotFoundError as exc:
        if exc.name != "gateway_worker.protocols.webdis":
            raise
        return None
    handle = functools.partial(module.handle, max_arguments=max_arguments, streams=streams)
    return cast(Handler, handle)


async def _webdis_missing(request: Request, redis: RedisExecutor, guard: CommandGuard) -> Response:
    return error_response(501, "the Webdis protocol is not available in this build")


class GatewayApp:
    """The worker's ASGI application (see the module docstring for the step order)."""

    def __init__(self, config: Config, span_exporter: object | None = None) -> None:
        self.config = config
        self.metrics = metrics.get()
        self.redis_client = build_backend(config.redis, on_error=self.metrics.redis_error)
        self._boot_problem: str | None = None
        try:
            self.tracing = Tracing(config.observability.tracing, exporter=span_exporter)
        except TracingUnavailable as exc:
            self._boot_problem = str(exc)
            self.tracing = Tracing(
                config.observability.tracing.model_copy(update={"enabled": False})
            )
        self.redis = self.tracing.wrap(self.redis_client)
        self.auth = Authenticator(config)
        self.policy = CommandPolicy(config)
        self.limiter = RateLimiter(config, self.redis_client)
        self.cors = Cors(config.server.cors) if config.server.cors.enabled else None
        self.admin = Admin(config) if config.features.admin_endpoints else None
        backend = self.redis_client
        self.streams = StreamServices(config, lambda: backend.stream_options, self.metrics)
        self.upstash = Upstash(config.server.max_arguments, self.streams)
        self.method_override = config.features.method_override
        self.debug = config.features.debug_mode
        self.access_log = config.observability.logging.access_log
        self.max_body = config.server.max_body_bytes
        self.request_timeout = config.server.request_timeout_seconds
        self.deadlines = RequestDeadlines(self.request_timeout)
        self._flusher: asyncio.Task[None] | None = None
        mounts: list[tuple[str, str, Handler]] = []
        api = config.api
        if api.upstash_enabled:
            mounts.append((api.upstash_prefix, "upstash", self.upstash.handle))
        if api.webdis_enabled:
            webdis = _load_webdis(config.server.max_arguments, self.streams) or _webdis_missing
            mounts.append((api.webdis_prefix, "webdis", webdis))
        self.mounts = sorted(mounts, key=lambda m: len(m[0]), reverse=True)
        self.websockets: ASGIApp | None = None
        if api.webdis_enabled and api.webdis_websockets:
            from gateway_worker.app.websocket import WebSockets

            self.websockets = WebSockets(
                config,
                redis=self.redis,
                auth=self.auth,
                policy=self.policy,
                limiter=self.limiter,
                cors=self.cors,
                streams=self.streams,
            )

    # -- lifecycle --------------------------------------------------------------------

    async def startup(self) -> None:
        if self._boot_problem:
            raise BootError(self._boot_problem)
        try:
            await self.redis_client.start()
        except RedisUnavailable as exc:
            await self.redis_client.close()
            raise BootError(f"Redis did not answer PING: {exc}") from None
        self._flusher = asyncio.create_task(self._flush_metrics(), name="metrics-flush")
        log.info(
            "app.started",
            redis=self.redis_client.where,
            mounts=[(p, n) for p, n, _ in self.mounts],
        )

    async def shutdown(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.streams.close()
        self.metrics.flush()
        await self.redis_client.close()
        self.tracing.shutdown()

    def begin_drain(self) -> None:
        """The worker started draining: streams are told to reconnect, then closed
        (``streams.registry``)."""
        self.streams.registry.begin_drain()

    async def _flush_metrics(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.metrics.flush()

    # -- requests ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # lifespan is off; websockets only with api.webdis_websockets (app.websocket)
            if scope["type"] == "websocket" and self.websockets is not None:
                await self.websockets(scope, receive, send)
            return
        await self.serve_exchange(AsgiExchange(scope, receive, send))

    async def serve_exchange(self, exchange: HttpExchange) -> None:
        """One HTTP request (the steps of the module docstring)."""
        path = exchange.path
        if path == "/healthz":
            await exchange.respond(200, _JSON, _HEALTHY, [])
            return
        if path == "/readyz":
            await self._readyz(exchange)
            return
        if self.tracing.enabled:
            with self.tracing.request_span(exchange.method, "http") as span:
                await self._serve(exchange, path, span)
        else:
            await self._serve(exchange, path, None)

    async def _serve(self, exchange: HttpExchange, path: str, span: Span | None) -> None:
        start = time.perf_counter()
        raw_headers = exchange.headers
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw_headers}
        if len(headers) != len(raw_headers):
            headers = _join_repeated(raw_headers)
        protocol = "none"
        task = asyncio.current_task()
        assert task is not None
        slot = self.deadlines.start(task)
        try:
            response, protocol = await self._handle(exchange, path, headers)
        except ClientGone:
            return
        except asyncio.CancelledError:
            if not self.deadlines.timed_out(task):
                raise
            response = error_response(
                504,
                f"request did not complete within server.request_timeout_seconds="
                f"{self.request_timeout:g}",
            )
        except RedisUnavailable as exc:
            response = error_response(503, f"Redis unavailable: {exc}")
        except ScriptTimeout as exc:
            response = error_response(504, str(exc))
        except Exception as exc:
            response = self._internal_error(exc)
        finally:
            self.deadlines.finish(slot, task)
        if self.cors is not None:
            response.headers.extend(self.cors.response_headers(headers))
        if response.stream is not None:
            # Counted (and logged) when it starts: its duration is the client's business.
            self._answered(exchange, response, protocol, start, span)
            await relay(exchange.send, exchange.receive, response.stream, stream_head(response))
            return
        await exchange.respond(
            response.status, response.content_type, response.body, response.headers
        )
        self._answered(exchange, response, protocol, start, span)

    def _answered(
        self,
        exchange: HttpExchange,
        response: Response,
        protocol: str,
        start: float,
        span: Span | None,
    ) -> None:
        """Metrics, trace and access log of an answered request."""
        if span is not None:
            self.tracing.finish_request(span, response.status, response.command)
        elapsed = time.perf_counter() - start
        self.metrics.observe(
            protocol, response.command, response.status, elapsed, response.batch_size
        )
        if self.access_log:
            client = exchange.client
            log.info(
                "http.request",
                method=exchange.method,
                protocol=protocol,
                command=metrics.command_label(response.command),
                commands=response.batch_size,
                status=response.status,
                duration_ms=round(elapsed * 1000, 3),
                client_ip=client[0] if client else None,
                bytes_out=len(response.body),
            )

    async def _handle(
        self, exchange: HttpExchange, path: str, headers: dict[str, str]
    ) -> tuple[Response, str]:
        method = exchange.method
        if self.cors is not None and method == "OPTIONS":
            preflight = self.cors.preflight(method, headers)
            if preflight is not None:
                return preflight, "cors"
        if self.method_override and method == "POST":
            override = headers.get("x-http-method-override")
            if override:
                method = override.strip().upper()
        body = await self._body(exchange.receive, method, headers)
        if isinstance(body, Response):
            return body, "none"
        client = exchange.client
        client_ip = client[0] if client else ""
        qs = exchange.query_string
        query = parse_qsl(qs.decode("latin-1"), keep_blank_values=True) if qs else []
        try:
            principal = self.auth.authenticate(headers, query, client_ip)
        except AuthError as exc:
            self.metrics.auth_failures.labels(str(exc.status)).inc()
            return error_response(exc.status, exc.message), "auth"
        if self.limiter.enabled:
            decision = await self.limiter.check(principal)
            if not decision.allowed:
                if not decision.unavailable:
                    self.metrics.rate_limited.inc()
                return rate_limited(decision), "ratelimit"
        if self.admin is not None and (path == "/admin" or path.startswith("/admin/")):
            request = Request(method, path[6:] or "/", query, headers, body, client_ip, principal)
            return await self._admin(self.admin, request), "admin"
        for prefix, name, handler in self.mounts:
            if prefix == "/":
                request_path = path
            elif path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                request_path = path[len(prefix) :] or "/"
            else:
                continue
            request = Request(method, request_path, query, headers, body, client_ip, principal)
            return await handler(request, self.redis, self.policy.guard_for(principal)), name
        return error_response(404, f"no protocol is mounted at {path}"), "none"

    async def _body(
        self, receive: Receive, method: str, headers: dict[str, str]
    ) -> bytes | Response:
        """The request body, or the answer when it is too large (413) or did not arrive
        within the request deadline (408)."""
        if (
            method == "GET"
            and "content-length" not in headers
            and "transfer-encoding" not in headers
        ):
            # No body is coming (the common case): skip the body reader; a GET with
            # an announced body goes through it like any other request.
            return b""
        try:
            return await read_body(receive, self.max_body, headers.get("content-length"))
        except BodyTooLarge as exc:
            return error_response(413, str(exc))
        except asyncio.CancelledError:
            # The deadline passed while the client was still sending: its fault (408),
            # not the gateway's (504).
            task = asyncio.current_task()
            if task is None or not self.deadlines.timed_out(task):
                raise
            return error_response(
                408,
                "request body not received within server.request_timeout_seconds="
                f"{self.request_timeout:g}",
            )

    def _internal_error(self, exc: Exception) -> Response:
        log.error("request.failed", error_type=type(exc).__name__, exc_info=self.debug)
        return internal_error(exc, self.debug)

    async def _admin(self, admin: Admin, request: Request) -> Response:
        """``/admin/*``: admin principals only (403 otherwise)."""
        if not request.principal.admin:
            self.metrics.auth_failures.labels("403").inc()
            return error_response(403, "/admin needs an admin credential")
        return await admin.handle(request)

    async def _readyz(self, exchange: HttpExchange) -> None:
        if await self.redis_client.ping():
            await exchange.respond(200, _JSON, _READY, [])
            return
        error = self.redis_client.unready_reason()
        body = json_bytes({"status": "unavailable", "error": error})
        await exchange.respond(503, _JSON, body, [])


def _join_repeated(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for k, v in raw:
        name, value = k.decode("latin-1"), v.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def build_app(config: Config, span_exporter: object | None = None) -> GatewayApp:
    """Assemble the worker's ASGI app for ``config`` (``span_exporter``: tests only,
    an OpenTelemetry exporter used instead of OTLP)."""
    return GatewayApp(config, span_exporter)
