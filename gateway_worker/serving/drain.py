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
* ``stream_drain_seconds``: how long a stream (SSE, chunked SUBSCRIBE) may stay open once
  it was told to reconnect: ``server.stream_drain_seconds`` (default min(5 s, T/2)), but
  never later than ``STREAM_CLOSE_MARGIN_SECONDS`` before the worker's own deadline, so
  a stream is closed cleanly rather than cut by it.

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
#: Longest time a stream stays open once told to reconnect, unless configured.
DEFAULT_STREAM_DRAIN_SECONDS = 5.0
#: Streams are closed at least this long before the worker's deadline: it covers
#: uvicorn's pauses before its graceful wait (0.2 s) and the writing of the last bytes.
STREAM_CLOSE_MARGIN_SECONDS = 0.3


@dataclass(frozen=True)
class DrainPolicy:
    """How long a draining worker may take, and what it does meanwhile."""

    kill_after_seconds: float
    worker_deadline_seconds: float
    idle_grace_seconds: float
    stream_drain_seconds: float

    @classmethod
    def from_config(cls, server: ServerConfig) -> DrainPolicy:
        timeout = server.graceful_shutdown_timeout_seconds
        margin = min(0.5, timeout / 10)
        deadline = timeout - margin
        streams = server.stream_drain_seconds
        if streams is None:
            streams = min(DEFAULT_STREAM_DRAIN_SECONDS, timeout / 2)
        return cls(
            kill_after_seconds=timeout,
            worker_deadline_seconds=deadline,
            idle_grace_seconds=min(MAX_IDLE_GRACE_SECONDS, timeout / 2),
            stream_drain_seconds=max(0.0, min(streams, deadline - STREAM_CLOSE_MARGIN_SECONDS)),
        )

    def unresponsive_kill_after(self, supervisor: SupervisorConfig) -> float:
        """A worker that missed its heartbeats drains on the shorter of both deadlines."""
        return min(self.kill_after_seconds, supervisor.heartbeat_timeout_seconds)
