"""The server both HTTP engines run under: uvicorn's ``Server`` on inherited listening
sockets, with the worker's startup report, signals and drain.

Why uvicorn's ``Server`` is subclassed (read its ``shutdown`` and ``capture_signals``
to see the stock behaviour):

* Stock ``capture_signals()`` re-raises SIGTERM after serving, which would make a
  cleanly drained worker die "of SIGTERM" instead of exiting 0. We install our own
  handlers on the loop: SIGTERM drains, SIGINT/SIGQUIT exit fast, SIGUSR1 reopens logs.
* ``startup()`` is extended to report ``ready`` and start heartbeats from the event
  loop itself (a blocked loop then misses them), per ``gateway_worker.contract``.
* ``shutdown()`` publishes the idle grace on the shared server state before uvicorn
  asks every connection to drain, so that each one (and any accepted just before the
  listener closed) drains without races (``serving.connection_drain``).
* The shared server state (``serving.state.WorkerServerState``) also holds the
  worker's registry of pending connections (``serving.pending``), which both engines
  use.

The engine (``server.http_engine``) is the protocol class given to uvicorn:
``serving.uvicorn_engine`` or ``serving.native``. The drain's deadlines come from
``serving.drain.DrainPolicy``, the one place they are decided.

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

import uvicorn
from uvicorn.server import Server

from gateway_worker.asgi import ASGIApp
from gateway_worker.config import Config, ServerConfig
from gateway_worker.serving.drain import MAX_IDLE_GRACE_SECONDS, DrainPolicy
from gateway_worker.serving.native.connection import NativeHttpProtocol
from gateway_worker.serving.pending import PendingConnections, PendingPolicy
from gateway_worker.serving.state import WorkerServerState
from gateway_worker.serving.uvicorn_engine import uvicorn_protocol

#: uvicorn's fixed pauses between the drain request and its graceful wait: its main
#: loop notices ``should_exit`` within one 0.1 s tick, and ``Server.shutdown`` sleeps
#: 0.1 s after asking every connection to drain, before it waits
#: ``timeout_graceful_shutdown`` for them.
UVICORN_SHUTDOWN_PAUSES_SECONDS = 0.2


def protocol_class(engine: str = "uvicorn") -> type[asyncio.Protocol]:
    """The HTTP protocol for ``server.http_engine``, with the draining behaviour."""
    if engine == "native":
        return NativeHttpProtocol
    return uvicorn_protocol()


def graceful_wait_seconds(policy: DrainPolicy) -> float:
    """uvicorn's ``timeout_graceful_shutdown``: the worker's drain deadline less
    uvicorn's own pauses, so that the worker is done before the supervisor kills it."""
    return max(0.0, policy.worker_deadline_seconds - UVICORN_SHUTDOWN_PAUSES_SECONDS)


def websocket_class(config: Config) -> type[asyncio.Protocol] | str:
    """What uvicorn's ``ws`` gets: the WebSocket protocol when ``api.webdis_websockets``
    is on, else "none" ("auto" would import a websockets library at every worker start)."""
    if not config.api.webdis_websockets:
        return "none"
    from gateway_worker.serving.websocket import GatewayWebSocketProtocol

    return GatewayWebSocketProtocol


def uvicorn_config(app: ASGIApp, config: Config) -> uvicorn.Config:
    """uvicorn settings derived from the gateway config."""
    policy = DrainPolicy.from_config(config.server)
    server = config.server
    return uvicorn.Config(
        app,
        lifespan="off",
        # The worker creates the loop itself (gateway_worker.__main__.new_loop); uvicorn
        # only runs inside it.
        loop="none",
        http=protocol_class(config.server.http_engine),
        ws=websocket_class(config),
        # A client that does not answer a ping within a heartbeat is closed; messages are
        # bounded like request bodies; no per-message compression (CPU and memory per
        # connection, and compressing secrets next to attacker-chosen data leaks them).
        ws_ping_interval=server.stream_heartbeat_seconds,
        ws_ping_timeout=server.stream_heartbeat_seconds,
        ws_max_size=server.max_body_bytes,
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
        timeout_keep_alive=int(max(1, round(config.server.keepalive_timeout_seconds))),
        limit_concurrency=config.server.max_connections,
        # Annotated int by uvicorn, but only ever passed to asyncio.wait_for(timeout=),
        # which takes a float: the exact deadline, not a truncation of it.
        timeout_graceful_shutdown=graceful_wait_seconds(policy),  # type: ignore[arg-type]
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
        pending: PendingPolicy | None = None,
    ) -> None:
        super().__init__(config)
        # uvicorn's shared state, plus the idle grace every connection reads on drain
        # and the pending connections (``pending``: the config defaults if not given).
        policy = pending or PendingPolicy.from_config(ServerConfig())
        self.pending = PendingConnections(policy)
        self._drain_state = WorkerServerState(self.pending)
        self.server_state = self._drain_state
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
        # Read by each connection's shutdown() (called by uvicorn's shutdown below) and
        # by connections that complete connection_made from now on.
        self._drain_state.drain_grace = self.idle_grace
        # Stop accepting *before* telling the supervisor so: its reload answers once every
        # old worker said so, and a connection made after that lands on the new generation
        # (uvicorn's shutdown below closes them again, harmlessly).
        for server in self.servers:
            server.close()
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
