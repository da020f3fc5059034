"""One request/response cycle of the native engine: the ASGI ``receive``/``send`` of a
request, and its response head, written together with the body.

The state uvicorn keeps in its ``RequestResponseCycle``, with less work per request:
no ``asyncio.Event`` (``receive()`` creates a future only when it has to wait), and the
status line and headers held back until the first body bytes, so that a (non-streamed)
response leaves in one ``transport.write``. The connection (``native.connection``)
parses requests, creates one ``Cycle`` each and runs it.

A cycle is also the request's ``asgi.HttpExchange``: an app offering
``serve_exchange`` (the gateway's) is given the cycle itself, reads the request from its
fields and answers with ``respond`` (one status line and header block, cached per status
and per second of ``Date``, one ``write``), with no scope or ASGI message built. Any
other app, and requests the proxy-headers middleware must see, get ASGI (``run``).
"""

from __future__ import annotations

import asyncio
import http
import logging
import urllib.parse
from collections.abc import Awaitable
from typing import Protocol

from uvicorn.server import ServerState

from gateway_worker.asgi import ASGIApp, ExchangeApp, Message, Scope

log = logging.getLogger("uvicorn.error")

STATUS_LINE = {
    int(s): b"HTTP/1.1 %d %s\r\n" % (int(s), s.phrase.encode("latin-1")) for s in http.HTTPStatus
}
_DISCONNECT: Message = {"type": "http.disconnect"}


class Connection(Protocol):
    """What a cycle uses of its connection (``native.connection.NativeHttpProtocol``)."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    server_state: ServerState
    write_paused: bool

    def resume_reading(self) -> None: ...

    async def drain(self) -> None: ...

    def on_response_complete(self) -> None: ...


def _status_line(status: int) -> bytes:
    line = STATUS_LINE.get(status)
    return line if line is not None else b"HTTP/1.1 %d \r\n" % status


_ASGI = {"version": "3.0", "spec_version": "2.3"}


class Peers(Protocol):
    """What a request's ASGI scope takes from its connection."""

    server_addr: tuple[str, int | None] | None
    client_addr: tuple[str, int] | None
    scheme: str
    app_state: dict[str, object]


def asgi_scope(
    conn: Peers,
    request: tuple[str, str, str, bytes, bytes],
    headers: list[tuple[bytes, bytes]],
) -> Scope:
    """The ASGI scope of a request: (method, HTTP version, path as sent, raw path, query)."""
    method, version, path, raw_path, query = request
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": version,
        "server": conn.server_addr,
        "client": conn.client_addr,
        "scheme": conn.scheme,
        "root_path": "",
        "headers": headers,
        "state": conn.app_state.copy(),
        "method": method,
        "path": urllib.parse.unquote(path) if "%" in path else path,
        "raw_path": raw_path,
        "query_string": query,
    }


class _Heads:
    """Status line + the server's default headers (``Date``, which uvicorn's server
    renews every second), per status, for ``Cycle.respond`` and ``send``: rebuilt when
    the default headers change."""

    def __init__(self) -> None:
        self._for: list[tuple[bytes, bytes]] | None = None
        self._heads: dict[int, bytes] = {}

    def get(self, status: int, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        if default_headers is not self._for:
            self._for = default_headers
            self._heads = {}
        head = self._heads.get(status)
        if head is None:
            parts = [_status_line(status)]
            for name, value in default_headers:
                parts += (name, b": ", value, b"\r\n")
            head = self._heads[status] = b"".join(parts)
        return head


_HEADS = _Heads()


class Cycle:
    """One request/response exchange (the state uvicorn keeps in RequestResponseCycle)."""

    # method, path, query_string, headers, client: the request, as asgi.HttpExchange has it
    __slots__ = (
        "body",
        "chunked",
        "client",
        "conn",
        "delivered",
        "disconnected",
        "expect_100",
        "head",
        "head_only",
        "headers",
        "keep_alive",
        "method",
        "more_body",
        "path",
        "query_string",
        "response_complete",
        "response_started",
        "waiter",
    )

    def __init__(
        self,
        conn: Connection,
        request: tuple[str, str, bytes, list[tuple[bytes, bytes]], tuple[str, int] | None],
        keep_alive: bool,
        expect_100: bool,
    ) -> None:
        self.conn = conn
        self.method, self.path, self.query_string, self.headers, self.client = request
        self.keep_alive = keep_alive
        self.expect_100 = expect_100
        self.head_only = self.method == "HEAD"
        self.body = bytearray()
        self.more_body = True
        self.delivered = False  # the last body message was handed to the app
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.chunked = False
        self.head: bytes | None = None
        self.waiter: asyncio.Future[None] | None = None

    @property
    def transport(self) -> asyncio.Transport:
        """The connection's transport (as uvicorn's cycles have it: a stream that must
        drop a client that stopped reading finds it from ``send``)."""
        return self.conn.transport

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        """The request through an ASGI app (``scope`` made by the connection)."""
        await self._guarded(app(scope, self.receive, self.send))

    async def serve(self, app: ExchangeApp) -> None:
        """The request through an app that takes the cycle as its ``HttpExchange``."""
        await self._guarded(app(self))

    async def _guarded(self, call: Awaitable[None]) -> None:
        try:
            await call
        except BaseException:  # as uvicorn: a cancelled or failed request is logged
            log.exception("Exception in ASGI application\n")
            if not self.response_started:
                await self._send_500()
            else:
                self.conn.transport.close()
        else:
            if not self.response_started:
                if self.disconnected:
                    return  # as uvicorn: the client left, the app rightly did not answer
                log.error("ASGI callable returned without starting response.")
                await self._send_500()
            elif not self.response_complete and not self.disconnected:
                log.error("ASGI callable returned without completing response.")
                self.conn.transport.close()

    async def _send_500(self) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"connection", b"close"),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": b"Internal Server Error"})

    async def receive(self) -> Message:
        conn = self.conn
        if self.expect_100:
            self.expect_100 = False
            if not conn.transport.is_closing():
                conn.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while not (self.disconnected or self.response_complete):
            if self.body or not (self.more_body or self.delivered):
                body = bytes(self.body)
                self.body.clear()
                if not self.more_body:
                    self.delivered = True
                return {"type": "http.request", "body": body, "more_body": self.more_body}
            conn.resume_reading()
            self.waiter = waiter = conn.loop.create_future()
            await waiter
        return _DISCONNECT

    async def send(self, message: Message) -> None:
        conn = self.conn
        if conn.write_paused:
            await conn.drain()
        if self.disconnected:
            return  # as uvicorn: writes to a closed connection are dropped
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', got {kind!r}.")
            self.response_started = True
            self._start(message)
            return
        if kind != "http.response.body" or self.response_complete:
            raise RuntimeError(
                f"Unexpected ASGI message {kind!r} sent, after response already completed."
                if self.response_complete
                else f"Expected ASGI message 'http.response.body', got {kind!r}."
            )
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if self.head_only:
            out = b""
        elif self.chunked:
            out = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more:
                out += b"0\r\n\r\n"
        else:
            out = body
        head = self.head
        if head is not None:
            self.head = None
            out = head + out
        self._write(out, last=not more)

    async def respond(
        self, status: int, content_type: str, body: bytes, headers: list[tuple[str, str]]
    ) -> None:
        """A whole answer in one write (``asgi.HttpExchange``): what ``send`` makes of an
        ``http.response.start`` with Content-Type and Content-Length and one body."""
        conn = self.conn
        if conn.write_paused:
            await conn.drain()
        if self.disconnected:
            return  # as send: writes to a closed connection are dropped
        if self.response_started:
            raise RuntimeError("respond() after the response started")
        self.response_started = True
        text = f"content-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
        if headers:
            extra = "".join([f"{name.lower()}: {value}\r\n" for name, value in headers])
            # one CR and one LF per header: none inside a name or a value
            if extra.count("\n") != len(headers) or extra.count("\r") != len(headers):
                raise RuntimeError("Invalid HTTP header.")
            text += extra
        if not self.keep_alive:
            text += "connection: close\r\n"
        head = _HEADS.get(status, conn.server_state.default_headers)
        out = head + text.encode("latin-1") + b"\r\n"
        if not self.head_only:
            out += body
        self._write(out, last=True)

    def _write(self, out: bytes, last: bool) -> None:
        """Write ``out`` (if any); ``last``: the response is complete with it."""
        conn = self.conn
        if out:
            if conn.transport.is_closing():
                # Closed under the app (its client's EOF while streaming, a refused
                # connection): as for a disconnect, the rest is dropped.
                self.disconnected = True
                return
            conn.transport.write(out)
        if last:
            self.response_complete = True
            self.wake()
            if not self.keep_alive:
                conn.transport.close()
            conn.on_response_complete()

    def _start(self, message: Message) -> None:
        parts = [_HEADS.get(message["status"], self.conn.server_state.default_headers)]
        chunked: bool | None = None
        close_sent = False
        for raw_name, value in message.get("headers", ()):
            name = raw_name.lower()
            if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name:
                raise RuntimeError("Invalid HTTP header.")
            if name == b"content-length":
                if chunked is None:
                    chunked = False
            elif name == b"transfer-encoding":
                if value.lower() == b"chunked":
                    chunked = True
            elif name == b"connection" and b"close" in [
                token.strip() for token in value.lower().split(b",")
            ]:
                self.keep_alive = False
                close_sent = True
            parts += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not close_sent:
            parts.append(b"connection: close\r\n")
        status = message["status"]
        if chunked is None and not self.head_only and status not in (204, 304):
            chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        self.chunked = bool(chunked)
        parts.append(b"\r\n")
        self.head = b"".join(parts)
        if message.get("trailers"):  # pragma: no cover - the app sends none
            raise RuntimeError("HTTP trailers are not supported")
