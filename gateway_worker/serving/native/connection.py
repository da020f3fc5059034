"""The "native" HTTP engine (``server.http_engine = "native"``): a lean httptools
protocol; this module is its connection, ``native.cycle`` one request on it.

Profiling a worker under ``wrk`` put about a quarter of its CPU in uvicorn's Python
HTTP/ASGI layer (``RequestResponseCycle``: header validation by regex, an
``asyncio.Event`` and several dicts per request, a keep-alive timer re-armed per
request) and a third in its two ``send`` syscalls per response. This protocol speaks
the same ASGI subset to the same app (``config.loaded_app``, uvicorn's middleware kept)
with less work per request: the status line and headers leave with the body in one
``transport.write``; ``receive()`` creates a future only when it has to wait; the
keep-alive timeout is one self-re-arming timer per connection. An app with a
``serve_exchange`` (the gateway's) is called without ASGI at all: the cycle is the
request's ``asgi.HttpExchange`` (``native.cycle``); a trusted proxy's forwarded
requests still go through uvicorn's proxy-headers middleware, over ASGI.

Everything else follows uvicorn's ``HttpToolsProtocol`` on purpose (a drop-in):
pipelined requests answered in order; uvicorn's 503 beyond ``limit_concurrency``
(``server.max_connections``); HTTP/1.0 or ``Connection: close`` closes after the reply;
400 and a close for a parse error; 500 for an app that fails before answering; a
WebSocket upgrade handed to ``config.ws_protocol_class`` (``native.upgrade``) when
``api.webdis_websockets`` is on. It runs under ``serving.server.WorkerServer`` and owns
the uvicorn engine's drain (``ConnectionDrain``), bounds on pending connections
(``serving.pending``) and early ends (``serving.connection_end``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import cast

import httptools
import uvicorn
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl
from uvicorn.server import ServerState

from gateway_worker.asgi import ASGIApp, ExchangeApp, Scope
from gateway_worker.serving.connection_drain import ConnectionDrain
from gateway_worker.serving.connection_end import (
    keep_open_after_eof,
    refuse,
    request_left_unread,
)
from gateway_worker.serving.drain import MAX_IDLE_GRACE_SECONDS
from gateway_worker.serving.native.cycle import Cycle, asgi_scope
from gateway_worker.serving.native.upgrade import hand_over, request_head, wants_websocket
from gateway_worker.serving.pending import HeadTooLarge, HeadWatch
from gateway_worker.serving.state import draining_grace, pending_connections

log = logging.getLogger("uvicorn.error")

#: Request body buffered before reading from the socket pauses (as uvicorn).
HIGH_WATER_LIMIT = 65536


# uvicorn types its 503 app with its own TypedDict scopes; it is the same ASGI callable.
_SERVICE_UNAVAILABLE = cast(ASGIApp, service_unavailable)


class NativeHttpProtocol(asyncio.Protocol):
    """An HTTP/1.1 connection: httptools parsing, ASGI calls, uvicorn's server state."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, object] | None = None,
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.config = config
        # uvicorn's loaded_app is untyped; it is the ASGI 3 app (maybe wrapped).
        self.app: ASGIApp = config.loaded_app
        # uvicorn's ProxyHeadersMiddleware (X-Forwarded-For/-Proto from trusted peers)
        # judges the peer only: judged once per connection, it is entered only for a
        # request carrying one of its headers (same outcome, cheaper per request).
        proxy = self.app if isinstance(self.app, ProxyHeadersMiddleware) else None
        self._proxy = proxy
        self.bare_app = cast(ASGIApp, proxy.app) if proxy is not None else None
        # The app's HttpExchange entry (the gateway's serve_exchange), when it has one and
        # nothing but the proxy-headers middleware wraps it: requests go to it without ASGI.
        inner = self.bare_app if proxy is not None else self.app
        self.exchange_app: ExchangeApp | None = getattr(inner, "serve_exchange", None)
        self._forwarded = False
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        # uvicorn types the set with its own protocol classes; it holds ours here.
        self.connections = cast("set[NativeHttpProtocol]", server_state.connections)
        self.tasks: set[asyncio.Task[None]] = server_state.tasks
        self.app_state = app_state if app_state is not None else {}
        self.limit_concurrency: int | None = config.limit_concurrency
        # uvicorn's loaded config names it (None: ws="none", upgrades are plain requests).
        self._ws: type[asyncio.Protocol] | None = config.ws_protocol_class
        self._upgrading = False
        self.keepalive_timeout: float = float(config.timeout_keep_alive)
        self.parser = httptools.HttpRequestParser(self)
        self.cycle: Cycle | None = None
        # pipelined requests waiting their turn, with their app (None: exchange_app) and scope
        self.pipeline: collections.deque[tuple[Cycle, ASGIApp | None, Scope]] = collections.deque()
        self.read_paused = False
        self.write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._idle_since: float | None = None  # None: busy, or bytes of a request pending
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._expect_100 = False
        self._drain: ConnectionDrain | None = None
        self._head: HeadWatch | None = None  # None: pending connections are not tracked
        self._in_head = False  # a request head has begun and is not complete
        self._in_body = False  # a head is complete, its message is not
        self._in_last_chunk = False  # a chunk header without data yet: maybe the trailers
        self._read_nbytes = 0  # the size of the read being parsed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio declares the base class; a stream server passes a Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.connections.add(self)
        # uvicorn's helpers, so that scope["server"/"client"/"scheme"] are identical.
        self.server_addr = get_local_addr(self.transport)
        self.client_addr = get_remote_addr(self.transport)
        self.scheme = "https" if is_ssl(self.transport) else "http"
        if self._proxy is not None and self.bare_app is not None:
            host = self.client_addr[0] if self.client_addr else None
            if host not in self._proxy.trusted_hosts:
                self.app = self.bare_app  # the middleware would change nothing
        pending = pending_connections(self.server_state)
        if pending is not None:
            self._head = pending.watch(self)
        grace = draining_grace(self.server_state)
        if grace is not None:
            self._start_drain(grace)

    def shutdown(self) -> None:
        """Start draining this connection (called by ``Server.shutdown``)."""
        grace = draining_grace(self.server_state)
        self._start_drain(MAX_IDLE_GRACE_SECONDS if grace is None else grace)

    def _start_drain(self, grace: float) -> None:
        if self._drain is None:
            self._drain = ConnectionDrain(self.loop, self.transport, lambda: self.cycle, grace)
            self._drain.begin()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        cycle = self.cycle
        if cycle is not None:
            if not cycle.response_complete:
                cycle.disconnected = True
            cycle.wake()
        for pending, _, _ in self.pipeline:
            pending.disconnected = True
        self.write_paused = False
        self._wake_drainers()
        if self._head is not None:
            self._head.lost()
            self._head = None  # watch <-> protocol: a cycle the GC would have to find
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None
        if exc is None:
            self.transport.close()
        # The parser holds our bound methods, a cycle holds us: without these cycles the
        # connection is freed at once, not by the cyclic GC (uvicorn drops its parser too).
        self.parser = None  # type: ignore[assignment]
        self.cycle = None
        self.pipeline.clear()

    def eof_received(self) -> bool:
        return keep_open_after_eof(self.cycle)

    def data_received(self, data: bytes) -> None:
        self._idle_since = None
        self._read_nbytes = len(data)
        cycle = self.cycle
        # A read beginning inside a body does not count towards the next head's size.
        head_counts = not self._in_body
        in_trailers = self._in_last_chunk
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._upgrading:
                self._hand_off()
                return
            log.warning("Unsupported upgrade request.")
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HeadTooLarge) and self._head is not None:
                self._refuse_head(self._head)
                return
            log.warning("Invalid HTTP request received.")
            self._refuse(400, "Invalid HTTP request received.")
            return
        head = self._head
        if head is not None:
            arrived = self.cycle is not cycle
            if not head.read(
                arrived=arrived,
                pending=self._in_head or (head_counts and not arrived),
                head_nbytes=len(data) if head_counts and not arrived else 0,
                # a read with no body data in the last chunk: the trailers
                trailer_nbytes=len(data) if in_trailers and self._in_last_chunk else 0,
                body_waiting=self._in_body,
            ):
                self._refuse_head(head)
                return
        if self._drain is not None:
            self._drain.after_data()

    def _refuse_head(self, head: HeadWatch) -> None:
        log.warning("Request head too large.")
        self._refuse(431, head.too_large())

    def _refuse(self, status: int, message: str, asked: bool = True) -> None:
        refuse(
            self.transport,
            self.cycle,
            status=status,
            message=message,
            asked=asked,
            default_headers=self.server_state.default_headers,
            pause_reading=self.pause_reading,
        )

    def close_pending(self, status: int, message: str) -> None:
        """Taken out by the pending registry (header timeout, or the cap)."""
        self._refuse(status, message, asked=self._in_head)

    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drainers()

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self) -> None:
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = b""
        self._expect_100 = False
        self._forwarded = False
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a trailer of a chunked body: ASGI has no request trailers
        name = name.lower()
        if name[0] == 120 and name in (b"x-forwarded-for", b"x-forwarded-proto"):  # b"x"
            self._forwarded = True
        elif name == b"expect" and value.lower() == b"100-continue":
            self._expect_100 = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        head = self._head
        if head is not None and head.could_exceed(self._read_nbytes):
            head.check_complete(self._url, self._headers)
        self._in_head = False
        self._in_body = True
        parser = self.parser
        version = parser.get_http_version()
        method = parser.get_method().decode("ascii")
        url = httptools.parse_url(self._url)
        raw_path: bytes = url.path
        path = raw_path.decode("ascii")  # as uvicorn: a non-ASCII path is a 400
        query: bytes = url.query or b""
        if self._ws is not None and parser.should_upgrade() and wants_websocket(self._headers):
            self._upgrading = True  # data_received hands the connection over
            return
        limit = self.limit_concurrency
        app: ASGIApp | None  # None: the app's serve_exchange, without a scope
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            log.warning("Exceeded concurrency limit.")
            app = _SERVICE_UNAVAILABLE
        elif self.exchange_app is not None and not (self._forwarded and self.app is self._proxy):
            app = None  # (a trusted proxy's X-Forwarded-* go through its middleware: ASGI)
        elif self._forwarded or self.bare_app is None:
            app = self.app
        else:
            app = self.bare_app
        scope: Scope = {}
        if app is not None:
            scope = asgi_scope(self, (method, version, path, raw_path, query), self._headers)
        previous = self.cycle
        cycle = self.cycle = Cycle(
            self,
            (method, path, query, self._headers, self.client_addr),
            version != "1.0" and parser.should_keep_alive(),
            self._expect_100,
        )
        if previous is None or previous.response_complete:
            self._start(cycle, app, scope)
        else:
            # Pipelined: answered in order, after the one in flight.
            self.pause_reading()
            self.pipeline.appendleft((cycle, app, scope))

    def on_chunk_header(self) -> None:
        # Data follows, or trailers (the last, empty chunk: no on_body before complete).
        self._in_last_chunk = True

    def on_chunk_complete(self) -> None:
        self._in_last_chunk = False

    def on_body(self, body: bytes) -> None:
        self._in_last_chunk = False
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return
        cycle.body += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.pause_reading()
        cycle.wake()

    def on_message_complete(self) -> None:
        self._in_body = False
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return
        cycle.more_body = False
        cycle.wake()

    def _start(self, cycle: Cycle, app: ASGIApp | None, scope: Scope) -> None:
        if app is None:
            assert self.exchange_app is not None
            task = self.loop.create_task(cycle.serve(self.exchange_app))
        else:
            task = self.loop.create_task(cycle.run(app, scope))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        if self._in_body and request_left_unread(self.cycle):  # (_in_body: a cheap first test)
            self.transport.close()
            return
        self.resume_reading()
        if self.pipeline:
            cycle, app, scope = self.pipeline.pop()
            self._start(cycle, app, scope)
        else:
            self._idle_since = self.loop.time()
            if self._keepalive_timer is None:
                self._keepalive_timer = self.loop.call_later(
                    self.keepalive_timeout, self._keepalive_check
                )
        if self._drain is not None:
            self._drain.after_response()

    def _hand_off(self) -> None:
        # The WebSocket protocol owns the connection: nothing of this one applies any more.
        self.connections.discard(self)
        if self._head is not None:
            self._head.lost()
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
        self._head = self._drain = self._keepalive_timer = None
        assert self._ws is not None
        hand_over(self._ws, self, request_head(self.parser.get_method(), self._url, self._headers))

    def _keepalive_check(self) -> None:
        # One timer per connection, re-armed while the connection keeps being used
        # (cheaper than uvicorn's call_later + cancel per request); same outcome: a
        # connection idle for keepalive_timeout after its last reply is closed.
        self._keepalive_timer = None
        idle_since = self._idle_since
        if idle_since is None or self.transport.is_closing():
            return  # busy: re-armed when its reply completes
        remaining = idle_since + self.keepalive_timeout - self.loop.time()
        if remaining <= 0:
            self.transport.close()
        else:
            self._keepalive_timer = self.loop.call_later(remaining, self._keepalive_check)
