"""Where triggers leave their requests for the main loop: signals, reload requests
(SIGHUP, the file watcher's thread, the control socket), and the self-pipe that wakes
the loop up.

Signal handlers and other threads only *enqueue* here (gunicorn's arbiter: no logging,
locking or reaping in a handler); the arbiter's ``dispatch()`` takes everything out on
the main loop. ``collections.deque.append``/``popleft`` are atomic, so no lock is needed.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Protocol


@dataclass(frozen=True)
class ReloadRequest:
    """Why a reload was asked for. ``fingerprint`` is set by the file watcher (the
    inputs it saw settle); a request without it is explicit (SIGHUP, control socket)."""

    trigger: str
    fingerprint: str | None = None

    @property
    def automatic(self) -> bool:
        return self.fingerprint is not None


class Waiter(Protocol):
    """Someone waiting for a reload's outcome (a control-socket connection)."""

    def reply(self, payload: Mapping[str, object]) -> None: ...


class ReloadRequester(Protocol):
    """What a trigger needs: a way to ask for a reload."""

    def request_reload(
        self, trigger: str, waiter: Waiter | None = None, fingerprint: str | None = None
    ) -> None: ...


class Inbox:
    """The main loop's mailbox: queued signals and reload requests, and its self-pipe."""

    def __init__(self) -> None:
        self.signals: collections.deque[int] = collections.deque()
        self.requests: collections.deque[tuple[ReloadRequest, Waiter | None]] = collections.deque()
        self.wake_fd, self.wakeup_write_fd = os.pipe()
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self.wakeup_write_fd, False)

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """The signal handler (the wakeup fd, ``signal.set_wakeup_fd``, wakes the loop)."""
        self.signals.append(signum)

    def request_reload(
        self, trigger: str, waiter: Waiter | None = None, fingerprint: str | None = None
    ) -> None:
        """Ask for a reload; coalesced with others pending. Main-loop or thread safe.

        ``fingerprint`` marks the file watcher's request (the inputs it saw settle)."""
        self.requests.append((ReloadRequest(trigger, fingerprint), waiter))
        self.wake()

    def wake(self) -> None:
        try:
            os.write(self.wakeup_write_fd, b"\0")
        except BlockingIOError:
            pass  # the pipe is full, so the loop is awake anyway

    def clear_wakeups(self) -> None:
        """Empty the self-pipe (the loop is awake now)."""
        try:
            while os.read(self.wake_fd, 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        os.close(self.wake_fd)
        os.close(self.wakeup_write_fd)
