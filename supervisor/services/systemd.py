"""systemd as a service: READY/RELOADING/STOPPING/STATUS and the watchdog pings, sent
through ``supervisor.systemd.Notifier`` (a no-op without ``$NOTIFY_SOCKET``)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from supervisor.reload.outcome import ReloadOutcome, ReloadResult
from supervisor.systemd import Notifier
from supervisor.workers.handle import WorkerHandle


class SystemdService:
    """Hooks: ``ready``, ``reloading``, ``reload_finished``, ``stopping``, ``tick``."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self._last_watchdog = 0.0

    def ready(self, status: str) -> None:
        self.notifier.ready(status)

    def reloading(self) -> None:
        self.notifier.reloading()

    def reload_finished(self, outcome: ReloadOutcome, status: str) -> None:
        # There is no "reload failed" message: READY=1 with a STATUS= saying so.
        text = status if not outcome.failed else f"{status}; last reload failed: {outcome.result}"
        if outcome.result is ReloadResult.HELD:
            text = f"{status}; a config change is held: apply it with `systemctl reload`"
        self.notifier.ready(text)

    def stopping(self) -> None:
        self.notifier.stopping()

    def tick(self, workers: Sequence[WorkerHandle]) -> None:
        interval = self.notifier.watchdog_interval()
        now = time.monotonic()
        if interval is not None and now - self._last_watchdog >= interval:
            # Sent from the main loop: a wedged loop stops the pings and systemd acts.
            self._last_watchdog = now
            self.notifier.watchdog()

    def close(self) -> None:
        self.notifier.close()
