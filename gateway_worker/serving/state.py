"""``WorkerServerState``: uvicorn's state shared by a server and its connections, plus
what every connection of a worker reads from it.

* ``drain_grace``: the idle grace once the server drains (``None`` before; see
  ``serving.connection_drain``);
* ``pending``: the worker's pending connections (``serving.pending``), or ``None`` when
  they are not tracked.

A protocol served by a plain ``uvicorn.Server`` (some tests) sees uvicorn's own
``ServerState`` instead: ``draining_grace`` and ``pending_connections`` then say None.
"""

from __future__ import annotations

from uvicorn.server import ServerState

from gateway_worker.serving.pending import PendingConnections


class WorkerServerState(ServerState):
    """uvicorn's ``ServerState`` plus the drain grace and the pending registry."""

    def __init__(self, pending: PendingConnections | None = None) -> None:
        super().__init__()
        self.drain_grace: float | None = None
        self.pending = pending


def draining_grace(state: ServerState) -> float | None:
    """The idle grace if ``state``'s server is draining, else None."""
    return state.drain_grace if isinstance(state, WorkerServerState) else None


def pending_connections(state: ServerState) -> PendingConnections | None:
    """The worker's pending-connection registry, if ``state`` keeps one."""
    return state.pending if isinstance(state, WorkerServerState) else None
