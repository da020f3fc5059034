"""The supervisor's main loop: wait for something to happen, then let the arbiter act.

One thread does everything (gunicorn's arbiter): ``select`` over the self-pipe (signals
and the watcher's thread write to it through ``supervisor.triggers.inbox``), every worker's
status pipe, the control socket, and, while no worker is ready, the listening sockets
and their clients (``supervisor.unserved``: a fast 503); then ``arbiter.dispatch()``, the
services' ``tick`` and ``arbiter.step()``. The 0.2 s timeout bounds how late a deadline
is noticed.
"""

from __future__ import annotations

import functools
import select
import signal
from collections.abc import Callable
from signal import Handlers
from types import FrameType

from supervisor.arbiter import SIGNALS, Arbiter
from supervisor.hooks import Hooks
from supervisor.triggers.control import ControlServer
from supervisor.triggers.inbox import Inbox
from supervisor.unserved import UnservedResponder
from supervisor.workers.pool import WorkerPool

SELECT_TIMEOUT_SECONDS = 0.2

_SignalHandler = Callable[[int, FrameType | None], object] | int | Handlers | None


class MainLoop:
    """Runs the arbiter until it returns an exit code."""

    def __init__(
        self,
        arbiter: Arbiter,
        pool: WorkerPool,
        inbox: Inbox,
        control: ControlServer,
        hooks: Hooks,
        *,
        unserved: UnservedResponder,
    ) -> None:
        self._arbiter = arbiter
        self._pool = pool
        self._inbox = inbox
        self._control = control
        self._hooks = hooks
        self._unserved = unserved

    def run(self) -> int:
        """Install the signal handlers, start generation 1, loop; returns the exit code."""
        previous: dict[signal.Signals, _SignalHandler] = {}
        for name in SIGNALS:
            sig = signal.Signals[f"SIG{name}"]
            previous[sig] = signal.signal(sig, self._inbox.on_signal)
        previous_wakeup = signal.set_wakeup_fd(self._inbox.wakeup_write_fd)
        try:
            self._arbiter.start()
            while True:
                self._wait()
                self._arbiter.dispatch()
                self._hooks.tick(self._pool.workers)
                code = self._arbiter.step()
                if code is not None:
                    return code
                self._unserved.follow(
                    self._arbiter.unserved_reason(), [lst.sock for lst in self._arbiter.listeners]
                )
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _wait(self) -> None:
        """Until something is readable (or the timeout), and read it."""
        ready: dict[int, Callable[[], object]] = {self._inbox.wake_fd: self._inbox.clear_wakeups}
        for w in self._pool.workers:
            if w.status_fd is not None:
                ready[w.status_fd] = w.read_status
        for fd in self._control.fds():
            ready[fd] = functools.partial(self._control.handle_readable, fd)
        for fd in self._unserved.fds():
            ready[fd] = functools.partial(self._unserved.handle_readable, fd)
        try:
            readable, _, _ = select.select(list(ready), [], [], SELECT_TIMEOUT_SECONDS)
        except InterruptedError:
            readable = []
        for fd in readable:
            ready[fd]()
