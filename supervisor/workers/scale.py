"""How many workers the serving generation should have, and why.

``server.workers`` sets it; SIGTTIN/SIGTTOU change it by one while running. That change
is kept across reloads that leave ``server.workers`` alone (a log-level reload must not
undo an operator's scale-up); a reload that changes ``server.workers`` resets it to the
new value and says so (``workers.scale_reset``). ``redis-gateway status`` shows both
(``desired_workers``, ``desired_workers_source``).
"""

from __future__ import annotations

import structlog

log = structlog.get_logger("redis_gateway.arbiter")


class WorkerScale:
    """The desired worker count of the serving generation."""

    def __init__(self, configured: int) -> None:
        #: ``server.workers`` of the running config.
        self.configured = configured
        self.desired = configured
        self._signal = ""  # the signal that set ``desired`` last

    @property
    def source(self) -> str:
        """Where ``desired`` comes from, for `status`."""
        if self.desired == self.configured:
            return "server.workers"
        return f"{self._signal} (server.workers = {self.configured})"

    def grow(self) -> None:
        """SIGTTIN: one worker more."""
        self.desired += 1
        self._signal = "SIGTTIN"

    def shrink(self) -> None:
        """SIGTTOU: one worker less, never none."""
        if self.desired > 1:
            self.desired -= 1
            self._signal = "SIGTTOU"

    def count_for(self, workers: int) -> int:
        """How many workers a generation whose config says ``server.workers = workers``
        starts with: the signal-set count while ``server.workers`` stays as it is."""
        return self.desired if workers == self.configured else workers

    def follow(self, workers: int) -> None:
        """A reload committed a config with ``server.workers = workers``."""
        if workers == self.configured:
            return
        if self.desired != self.configured:
            log.info(
                "workers.scale_reset",
                old=self.desired,
                new=workers,
                reason=f"server.workers changed ({self.configured} -> {workers})",
                signal=self._signal,
            )
        self.configured = self.desired = workers
