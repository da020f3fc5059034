"""The "uvicorn" HTTP engine (``server.http_engine = "uvicorn"``, the default):
uvicorn's own protocols, with the race-free drain, one write per response, bounded
pending connections and answers to half-closed clients.

Subclassing the protocol classes is uvicorn's extension point (``uvicorn.Config(http=...)``
takes a class). Each subclass owns

* a ``ConnectionDrain`` once its server drains (``serving.connection_drain``);
* a ``HeadWatch`` (``serving.pending``): stock uvicorn has no timeout before the first
  request of a connection, no bound on connections that never send one, and no bound
  on the size of a request head with httptools;
* an ``eof_received`` that keeps a half-closed connection open for its answer, and a
  400 for garbage pipelined behind requests that waits for their answers
  (``serving.connection_end``; stock uvicorn loses them);

and, for httptools, wraps its transport in a ``CoalescingTransport``
(``serving.write_coalescing``). A WebSocket upgrade (``api.webdis_websockets``) is
uvicorn's: the connection goes to ``config.ws_protocol_class``
(``serving.websocket``), no longer pending, with the real transport.
"""

from __future__ import annotations

import asyncio
from typing import cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway_worker.serving.connection_drain import ConnectionDrain
from gateway_worker.serving.connection_end import (
    answers_owed,
    keep_open_after_eof,
    refuse,
    request_left_unread,
)
from gateway_worker.serving.drain import MAX_IDLE_GRACE_SECONDS
from gateway_worker.serving.pending import HeadTooLarge, HeadWatch
from gateway_worker.serving.state import draining_grace, pending_connections
from gateway_worker.serving.write_coalescing import CoalescingTransport

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    HAVE_HTTPTOOLS = True
except ImportError:  # pragma: no cover - httptools ships with uvicorn[standard]
    HAVE_HTTPTOOLS = False


if HAVE_HTTPTOOLS:

    class DrainingHttpToolsProtocol(HttpToolsProtocol):
        """httptools protocol with a race-free drain, one write per response, bounded
        pending connections and answers to half-closed clients."""

        _drain: ConnectionDrain | None = None
        _head: HeadWatch | None = None  # None: pending connections are not tracked
        _read_nbytes = 0  # the size of the read being parsed
        _too_large = False  # the head just parsed is larger than server.max_header_bytes
        _in_last_chunk = False  # a chunk header without data yet: maybe the trailers

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            # One send() per response instead of two (status+headers, then body): see
            # gateway_worker.serving.write_coalescing. pause/resume_reading, is_closing
            # and get_extra_info pass through; close() flushes what is buffered first.
            super().connection_made(cast(asyncio.Transport, CoalescingTransport(transport)))
            pending = pending_connections(self.server_state)
            if pending is not None:
                self._head = pending.watch(self)
            grace = draining_grace(self.server_state)
            if grace is not None:
                self._start_drain(grace)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            if self._head is not None:
                self._head.lost()
                self._head = None  # watch <-> protocol: a cycle the GC would have to find

        def eof_received(self) -> bool:  # type: ignore[override]
            if keep_open_after_eof(self.cycle):
                return True
            # asyncio closes the *inner* transport after this: close through the
            # coalescing one first, so that a reply written in this loop iteration is
            # flushed before the close instead of dropped.
            self.transport.close()
            return False

        def shutdown(self) -> None:
            """Start draining this connection (called by ``Server.shutdown``)."""
            grace = draining_grace(self.server_state)
            self._start_drain(MAX_IDLE_GRACE_SECONDS if grace is None else grace)

        def _start_drain(self, grace: float) -> None:
            if self._drain is None:
                self._drain = ConnectionDrain(self.loop, self.transport, lambda: self.cycle, grace)
                self._drain.begin()

        def handle_websocket_upgrade(self) -> None:
            # The WebSocket protocol owns the connection from here: not pending any more
            # (the header timeout would close it), not drained as HTTP (its own
            # shutdown() sends 1012), and it writes frames to the real transport.
            if self._head is not None:
                self._head.lost()
                self._head = None
            self._drain = None
            if isinstance(self.transport, CoalescingTransport):
                self.transport = self.transport.inner
            super().handle_websocket_upgrade()

        def data_received(self, data: bytes) -> None:
            self._read_nbytes = len(data)
            self._too_large = False
            cycle = self.cycle
            # A read that begins inside a body holds the end of that body first: it
            # does not count towards the size of a head that begins in it.
            head_counts = cycle is None or not cycle.more_body
            in_trailers = self._in_last_chunk
            super().data_received(data)
            head = self._head
            if head is not None:
                arrived = self.cycle is not cycle
                latest = self.cycle
                if not head.read(
                    arrived=arrived,
                    pending=self._head_begun() or (head_counts and not arrived),
                    head_nbytes=len(data) if head_counts and not arrived else 0,
                    # a read with no body data in the last chunk: the trailers
                    trailer_nbytes=len(data) if in_trailers and self._in_last_chunk else 0,
                    body_waiting=(
                        latest is not None and latest.more_body and not latest.response_complete
                    ),
                ):
                    self._refuse_head(head)  # (refuse() does nothing if uvicorn closed already)
                    return
            if self._drain is not None:
                self._drain.after_data()

        def _head_begun(self) -> bool:
            """A request head has begun and is not complete. uvicorn's state is read
            instead of overriding its parser callbacks (a frame each per request):
            on_message_begin makes a new scope, on_headers_complete a cycle holding it."""
            scope, latest = self.scope, self.cycle
            return scope is not None and (latest is None or latest.scope is not scope)

        def _refuse_head(self, head: HeadWatch) -> None:
            self.logger.warning("Request head too large.")
            self._refuse(431, head.too_large())

        def on_headers_complete(self) -> None:
            head = self._head
            if head is not None and head.could_exceed(self._read_nbytes):
                try:
                    head.check_complete(self.url, self.headers)
                except HeadTooLarge:
                    self._too_large = True  # uvicorn answers the parse error: 431 instead
                    raise
            super().on_headers_complete()

        def send_400_response(self, msg: str) -> None:
            # uvicorn's parse-error answer, which would overtake answers still owed.
            if self._too_large and self._head is not None:
                self._refuse_head(self._head)
                return
            self._refuse(400, msg)

        def _refuse(self, status: int, message: str, asked: bool = True) -> None:
            refuse(
                self.transport,
                self.cycle,
                status=status,
                message=message,
                asked=asked,
                default_headers=self.server_state.default_headers,
                pause_reading=self.flow.pause_reading,
            )

        def close_pending(self, status: int, message: str) -> None:
            """Taken out by the pending registry (header timeout, or the cap)."""
            self._refuse(status, message, asked=self._head_begun())

        def on_chunk_header(self) -> None:
            # (uvicorn has none; httptools calls it if the protocol has it.) Data
            # follows, or, for the last, empty chunk, the trailers (which uvicorn would
            # append to the scope's headers without bound): told apart by whether
            # on_body comes before on_chunk_complete.
            self._in_last_chunk = True

        def on_chunk_complete(self) -> None:
            self._in_last_chunk = False

        def on_body(self, body: bytes) -> None:
            self._in_last_chunk = False
            super().on_body(body)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            cycle = self.cycle  # (more_body first: the common case decides in one read)
            if cycle.more_body and not self.pipeline and request_left_unread(cycle):
                self.transport.close()
                return
            if self._drain is not None:
                self._drain.after_response()


class DrainingH11Protocol(H11Protocol):
    """h11 protocol with a race-free drain, bounded pending connections and answers to
    half-closed clients (fallback when httptools is missing; h11 bounds the size of an
    incomplete head itself)."""

    _drain: ConnectionDrain | None = None
    _head: HeadWatch | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        pending = pending_connections(self.server_state)
        if pending is not None:
            self._head = pending.watch(self)
        grace = draining_grace(self.server_state)
        if grace is not None:
            self._start_drain(grace)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._head is not None:
            self._head.lost()
            self._head = None  # watch <-> protocol: a cycle the GC would have to find

    def eof_received(self) -> bool:  # type: ignore[override]
        return keep_open_after_eof(self.cycle)

    def shutdown(self) -> None:
        """Start draining this connection (called by ``Server.shutdown``)."""
        grace = draining_grace(self.server_state)
        self._start_drain(MAX_IDLE_GRACE_SECONDS if grace is None else grace)

    def _start_drain(self, grace: float) -> None:
        if self._drain is None:
            self._drain = ConnectionDrain(self.loop, self.transport, lambda: self.cycle, grace)
            self._drain.begin()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # As the httptools protocol's: the WebSocket protocol owns the connection now.
        if self._head is not None:
            self._head.lost()
            self._head = None
        self._drain = None
        super().handle_websocket_upgrade(event)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        head = self._head
        if head is not None and not self.transport.is_closing():
            if self.conn.their_state is h11.IDLE:
                head.incomplete(0)  # h11 refuses a head over its own size limit
            elif head.registered:
                head.complete()
            latest = self.cycle
            waiting = latest is not None and latest.more_body and not latest.response_complete
            if waiting is not head.in_body:
                head.body_pending(waiting)
        if self._drain is not None:
            self._drain.after_data()

    def close_pending(self, status: int, message: str) -> None:
        """Taken out by the pending registry (header timeout, or the cap)."""
        refuse(
            self.transport,
            self.cycle,
            status=status,
            message=message,
            asked=bool(self.conn.trailing_data[0]),
            default_headers=self.server_state.default_headers,
            pause_reading=self.flow.pause_reading,
        )

    def send_400_response(self, msg: str) -> None:
        if answers_owed(self.cycle):  # answer the requests before the garbage first
            self.cycle.keep_alive = False
            self.flow.pause_reading()
        else:
            super().send_400_response(msg)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if request_left_unread(self.cycle):
            self.transport.close()
            return
        if self._drain is not None:
            self._drain.after_response()


def uvicorn_protocol() -> type[asyncio.Protocol]:
    """The httptools protocol, or h11's when httptools is not installed."""
    if HAVE_HTTPTOOLS:
        return DrainingHttpToolsProtocol
    return DrainingH11Protocol  # pragma: no cover
