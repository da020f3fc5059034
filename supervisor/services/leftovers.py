"""A dead supervisor's leftovers that had to wait for its orphaned workers.

At start the builder removes what supervisors killed without a teardown left behind
(``supervisor.runtime_files.clean_dead``), except a metrics dir some orphaned worker of
theirs may still write into: restarted at once (systemd's ``Restart=``), a supervisor
finds them draining. Those exit by themselves within their drain deadline, so while any
such dir is left, ``tick`` looks again every ``CHECK_SECONDS`` and removes it once they
are gone, and so does ``stopping``; then it stops looking (a bool test per main-loop
iteration).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog

from supervisor import runtime_files
from supervisor.workers.handle import WorkerHandle

log = structlog.get_logger("redis_gateway.supervisor")

#: How often the leftovers of a dead supervisor whose workers still drain are looked at.
CHECK_SECONDS = 2.0


def clean_leftovers() -> None:
    """Remove what dead supervisors left behind, and say what went."""
    removed = runtime_files.clean_dead()
    if removed:
        log.info("supervisor.leftovers_removed", paths=removed)


class LeftoversService:
    """Hooks: ``tick`` retries ``clean_leftovers`` while a dead supervisor's orphaned
    workers are draining (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next = clock() + CHECK_SECONDS
        self.waiting = runtime_files.orphans_draining()

    def tick(self, workers: Sequence[WorkerHandle]) -> None:
        if self.waiting and self._clock() >= self._next:
            self._look()

    def stopping(self) -> None:
        if self.waiting:
            self._look()

    def _look(self) -> None:
        self._next = self._clock() + CHECK_SECONDS
        clean_leftovers()
        self.waiting = runtime_files.orphans_draining()
