"""The drain policy: every deadline of a worker's drain, decided once from the config.

``server.graceful_shutdown_timeout_seconds`` (T) is the only knob. From it:

* ``kill_after_seconds`` = T exactly: the supervisor SIGKILLs a worker still alive T
  seconds after it asked it to drain (reload, stop, scale-down).
* ``worker_deadline_seconds``: the worker itself stops waiting for open connections a
  little earlier (T minus a margin of min(0.5 s, T/10)), so it can exit cleanly, flush
  its logs and say goodbye on the status pipe before the supervisor's SIGKILL.
* ``idle_grace_seconds`` = min(1 s, T/2): how long an idle keep-alive connection is kept
  once draining began (any bytes restart it), so a request already on the wire is served
  instead of reset.

The supervisor and the worker both call ``DrainPolicy.from_config``; nobody else turns
T into a number. Shorter, fixed deadlines for other stops are named here too.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway_worker.config import ServerConfig, SupervisorConfig

#: Longest time an idle keep-alive connection is kept open once draining started.
MAX_IDLE_GRACE_SECONDS = 1.0
#: Fast stop (SIGQUIT, second Ctrl+C): the worker exits at once; killed after this.
FAST_STOP_KILL_SECONDS = 2.0
#: A new generation being abandoned (readiness failed, supervisor stopping).
ABANDON_KILL_SECONDS = 2.0
#: A replacement worker that never became ready.
START_TIMEOUT_KILL_SECONDS = 1.0


@dataclass(frozen=True)
class DrainPolicy:
    """How long a draining worker may take, and what it does meanwhile."""

    kill_after_seconds: float
    worker_deadline_seconds: float
    idle_grace_seconds: float

    @classmethod
    def from_config(cls, server: ServerConfig) -> DrainPolicy:
        timeout = server.graceful_shutdown_timeout_seconds
        margin = min(0.5, timeout / 10)
        return cls(
            kill_after_seconds=timeout,
            worker_deadline_seconds=timeout - margin,
            idle_grace_seconds=min(MAX_IDLE_GRACE_SECONDS, timeout / 2),
        )

    def unresponsive_kill_after(self, supervisor: SupervisorConfig) -> float:
        """A worker that missed its heartbeats drains on the shorter of both deadlines."""
        return min(self.kill_after_seconds, supervisor.heartbeat_timeout_seconds)
