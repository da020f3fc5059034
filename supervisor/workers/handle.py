"""What the supervisor needs of one worker, whatever runs it: ``WorkerHandle``.

``supervisor.worker_process.WorkerProcess`` is the real one (a child interpreter and
its pipes); the unit tests' ``FakeWorker`` is another. ``WorkerFactory`` makes them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

from gateway_worker.config import Config
from gateway_worker.contract import StatusMessage
from supervisor.sockets import Listener


class WorkerState(enum.StrEnum):
    """Life of a worker, as seen by the supervisor."""

    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"  # SIGTERM sent: stop accepting, finish, exit
    EXITED = "exited"


class WorkerHandle(Protocol):
    """One worker of one generation."""

    #: Set by the pool for a fast stop (no drain: SIGQUIT, then a kill deadline).
    state: WorkerState
    #: Monotonic time after which the pool SIGKILLs it (set by ``drain``).
    kill_deadline: float | None
    #: The supervisor asked it to stop (``drain``, ``kill``, a fast stop): its exit is
    #: expected, never a crash (``kill`` clears the deadline, not this).
    stop_requested: bool
    #: It said it no longer accepts connections (its ``draining`` message, sent once
    #: its listeners are closed): a connection made now goes to another worker.
    stopped_accepting: bool

    @property
    def pid(self) -> int: ...
    @property
    def generation(self) -> int: ...
    @property
    def slot(self) -> int: ...
    @property
    def restarts(self) -> int: ...
    @property
    def alive(self) -> bool: ...
    @property
    def error(self) -> str | None:
        """The worker's own fatal error, or why it is gone."""

    @property
    def returncode(self) -> int | None: ...
    @property
    def started_at(self) -> float: ...
    @property
    def last_heartbeat(self) -> float: ...
    @property
    def status_fd(self) -> int | None:
        """Readable when the worker sent something (None once it is gone)."""

    def read_status(self) -> Sequence[StatusMessage]:
        """Drain the status pipe; updates state and heartbeat."""

    def poll(self) -> bool:
        """Reap it if it exited; True when it just did."""

    def signal(self, sig: int) -> None: ...
    def drain(self, timeout: float) -> None:
        """SIGTERM now; the pool SIGKILLs it if it is still alive ``timeout`` s later."""

    def kill(self) -> None: ...
    def kill_and_wait(self) -> bool:
        """SIGKILL it if alive and wait for the process (teardown); False if it never ran."""

    def close(self) -> None:
        """Release the pipes of an exited worker."""

    def describe(self) -> dict[str, object]:
        """JSON-able view for `redis-gateway status`."""


class WorkerEvents(Protocol):
    """What the pool announces of its workers (part of ``supervisor.hooks.Hooks``)."""

    def worker_exited(self, pid: int) -> None:
        """A worker process is gone (clean up its per-process metrics)."""

    def worker_restarted(self) -> None:
        """A worker is being replaced after it crashed."""


class WorkerFactory(Protocol):
    """Starts one worker with its config and the listening sockets it inherits."""

    def __call__(
        self, generation: int, slot: int, restarts: int, config: Config, listeners: list[Listener]
    ) -> WorkerHandle: ...
