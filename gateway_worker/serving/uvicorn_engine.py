"""The "uvicorn" HTTP engine (``server.http_engine = "uvicorn"``, the default):
uvicorn's own protocols, with the race-free drain and one write per response.

Subclassing the protocol classes is uvicorn's extension point (``uvicorn.Config(http=...)``
takes a class). Each subclass owns a ``ConnectionDrain`` once its server drains
(``gateway_worker.serving.connection_drain``) and, for httptools, wraps its transport in
a ``CoalescingTransport`` (``gateway_worker.serving.write_coalescing``).
"""

from __future__ import annotations

import asyncio
from typing import cast

from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway_worker.serving.connection_drain import ConnectionDrain, draining_grace
from gateway_worker.serving.drain import MAX_IDLE_GRACE_SECONDS
from gateway_worker.serving.write_coalescing import CoalescingTransport

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    HAVE_HTTPTOOLS = True
except ImportError:  # pragma: no cover - httptools ships with uvicorn[standard]
    HAVE_HTTPTOOLS = False


if HAVE_HTTPTOOLS:

    class DrainingHttpToolsProtocol(HttpToolsProtocol):
        """httptools protocol with a race-free drain and one write per response."""

        _drain: ConnectionDrain | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            # One send() per response instead of two (status+headers, then body): see
            # gateway_worker.serving.write_coalescing. pause/resume_reading, is_closing
            # and get_extra_info pass through; close() flushes what is buffered first.
            super().connection_made(cast(asyncio.Transport, CoalescingTransport(transport)))
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

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._drain is not None:
                self._drain.after_data()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._drain is not None:
                self._drain.after_response()


class DrainingH11Protocol(H11Protocol):
    """h11 protocol with a race-free drain (fallback when httptools is missing)."""

    _drain: ConnectionDrain | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
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

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._drain is not None:
            self._drain.after_data()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._drain is not None:
            self._drain.after_response()


def uvicorn_protocol() -> type[asyncio.Protocol]:
    """The httptools protocol, or h11's when httptools is not installed."""
    if HAVE_HTTPTOOLS:
        return DrainingHttpToolsProtocol
    return DrainingH11Protocol  # pragma: no cover
