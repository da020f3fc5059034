"""Serve the app with uvicorn on inherited listening sockets, and drain without races.

Why uvicorn is subclassed here (read uvicorn's ``Server.shutdown`` and the http
protocols' ``shutdown()`` to see the stock behaviour):

* Stock ``shutdown()`` on a connection closes it *at once* when no request is in
  flight. A client that had just sent a request on that keep-alive connection (or had
  just connected and not yet sent anything) gets a reset or an empty reply: the race
  behind the residual errors of uvicorn's own reload tests. Our protocols instead mark
  the connection *draining*: the next request parsed on it gets ``keep_alive = False``
  (its reply carries ``Connection: close`` and the connection then closes), and a
  connection that stays idle is closed only after ``idle_grace`` seconds, so bytes
  already on the wire are served.
* Stock ``capture_signals()`` re-raises SIGTERM after serving, which would make a
  cleanly drained worker die "of SIGTERM" instead of exiting 0. We install our own
  handlers on the loop: SIGTERM drains, SIGINT/SIGQUIT exit fast, SIGUSR1 reopens logs.
* ``startup()`` is extended to report ``ready`` and start heartbeats from the event
  loop itself (a blocked loop then misses them), per ``gateway_worker.contract``.

The listening socket is the supervisor's, inherited; closing our copy on drain stops
*this* process accepting while the kernel's single accept queue stays open for the
other workers (no SO_REUSEPORT anywhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import Callable, Generator
from typing import Any, cast

import uvicorn
from uvicorn.server import Server

from gateway_worker.config import Config
from gateway_worker.serving.write_coalescing import CoalescingTransport

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _FastProtocol

    HAVE_HTTPTOOLS = True
except ImportError:  # pragma: no cover - httptools ships with uvicorn[standard]
    HAVE_HTTPTOOLS = False
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Longest time an idle keep-alive connection is kept open once draining started.
MAX_IDLE_GRACE_SECONDS = 1.0


class _DrainMixin:
    """Graceful connection drain shared by the httptools and h11 protocols."""

    idle_grace: float = MAX_IDLE_GRACE_SECONDS
    _draining = False
    _grace_timer: asyncio.TimerHandle | None = None
    # Provided by the uvicorn protocol classes this is mixed into.
    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    def shutdown(self) -> None:
        """Start draining this connection (called by ``Server.shutdown``)."""
        self._draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            # In flight: let it finish, and close after its reply.
            self.cycle.keep_alive = False
            return
        self._arm_grace()

    def _arm_grace(self) -> None:
        if self._grace_timer is None and not self.transport.is_closing():
            self._grace_timer = self.loop.call_later(self.idle_grace, self._grace_expired)

    def _grace_expired(self) -> None:
        self._grace_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
            return
        self.transport.close()

    def _drain_if_server_draining(self) -> None:
        # A connection accepted just before the listener closed reaches
        # connection_made after Server.shutdown() walked the connection set.
        grace = getattr(getattr(self, "server_state", None), "drain_grace", None)
        if grace is not None and not self._draining:
            self.idle_grace = grace
            self.shutdown()

    def _after_data(self) -> None:
        if not self._draining:
            return
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A request arrived while draining: answer it, with Connection: close.
            cycle.keep_alive = False
        else:
            # Part of a request (or stray bytes): the connection is not idle, so the
            # grace starts over; it only closes after `idle_grace` of silence.
            self._arm_grace()


if HAVE_HTTPTOOLS:

    class DrainingHttpToolsProtocol(_DrainMixin, _FastProtocol):
        """httptools protocol with a race-free drain."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            # One send() per response instead of two (status+headers, then body): see
            # gateway_worker.serving.write_coalescing. pause/resume_reading, is_closing and
            # get_extra_info pass through; close() flushes what is buffered first.
            super().connection_made(cast(asyncio.Transport, CoalescingTransport(transport)))
            self._drain_if_server_draining()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._after_data()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._draining:
                self._arm_grace()


class DrainingH11Protocol(_DrainMixin, H11Protocol):
    """h11 protocol with a race-free drain (fallback when httptools is missing)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._drain_if_server_draining()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._after_data()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._draining:
            self._arm_grace()


def protocol_class(engine: str = "uvicorn") -> type[asyncio.Protocol]:
    """The HTTP protocol for ``server.http_engine``, with the draining behaviour."""
    if engine == "native":
        # Imported here: gateway_worker.serving.native.connection builds on _DrainMixin above.
        from gateway_worker.serving.native.connection import NativeHttpProtocol

        return NativeHttpProtocol
    if HAVE_HTTPTOOLS:
        return DrainingHttpToolsProtocol
    return DrainingH11Protocol  # pragma: no cover


def uvicorn_config(app: Any, config: Config) -> uvicorn.Config:
    """uvicorn settings derived from the gateway config."""
    return uvicorn.Config(
        app,
        lifespan="off",
        # The worker creates the loop itself (gateway_worker.__main__.new_loop); uvicorn
        # only runs inside it.
        loop="none",
        http=protocol_class(config.server.http_engine),
        # The gateway serves no websockets; "auto" would import a websockets library
        # at every worker start.
        ws="none",
        log_config=None,
        access_log=False,
        timeout_keep_alive=int(max(1, round(config.server.keepalive_timeout_seconds))),
        limit_concurrency=config.server.max_connections,
        timeout_graceful_shutdown=int(max(1, config.server.graceful_shutdown_timeout_seconds)),
        server_header=False,
    )


class WorkerServer(Server):
    """uvicorn ``Server`` with contract-aware startup, signals and drain."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        on_started: Callable[[], None] | None = None,
        on_draining: Callable[[], None] | None = None,
        on_reopen_logs: Callable[[], None] | None = None,
        idle_grace: float = MAX_IDLE_GRACE_SECONDS,
    ) -> None:
        super().__init__(config)
        self._on_started = on_started
        self._on_draining = on_draining
        self._on_reopen_logs = on_reopen_logs
        self.idle_grace = idle_grace
        self.drain_started_at: float | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Handlers on the loop itself (no re-raise after serving, unlike uvicorn's).
        loop = asyncio.get_running_loop()
        handlers: dict[int, Callable[[], None]] = {
            signal.SIGTERM: self.request_drain,
            signal.SIGINT: self.request_fast_exit,
            signal.SIGQUIT: self.request_fast_exit,
            signal.SIGUSR1: self._reopen_logs,
        }
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler)
        try:
            yield
        finally:
            for sig in handlers:
                loop.remove_signal_handler(sig)

    def request_drain(self) -> None:
        """Stop accepting and drain (SIGTERM, or EOF from the supervisor)."""
        self.should_exit = True

    def request_fast_exit(self) -> None:
        """Stop now: in-flight requests are cancelled."""
        self.should_exit = True
        self.force_exit = True

    def _reopen_logs(self) -> None:
        if self._on_reopen_logs is not None:
            self._on_reopen_logs()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            self._on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.drain_started_at = time.monotonic()
        # Read by connections that complete connection_made from now on.
        self.server_state.drain_grace = self.idle_grace  # type: ignore[attr-defined]
        for conn in list(self.server_state.connections):
            # Protocol instances share the class attribute; set per connection.
            conn.idle_grace = self.idle_grace  # type: ignore[union-attr]
        if self._on_draining is not None:
            self._on_draining()
        if self.force_exit:
            for server in self.servers:
                server.close()
            for conn in list(self.server_state.connections):
                conn.transport.close()
            for task in self.server_state.tasks:
                task.cancel()
            return
        await super().shutdown(sockets=sockets)
