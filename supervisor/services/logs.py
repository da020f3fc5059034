"""Supervisor logging as a service: reconfigured after every commit, reopened on SIGUSR1."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from supervisor import logging as sup_logging
from supervisor.config import LoadedConfig
from supervisor.reload.outcome import ReloadOutcome
from supervisor.workers.handle import WorkerHandle

log = structlog.get_logger("redis_gateway.supervisor")


class LogService:
    """Hooks: ``committed`` (new level/format/output), ``reopen_logs``."""

    def committed(self, loaded: LoadedConfig, version: int) -> None:
        try:
            sup_logging.configure(loaded.config.observability.logging)
        except OSError as exc:  # keep the previous sink; the workers already use it
            log.error("logging.reconfigure_failed", error=str(exc))  # noqa: TRY400 - expected condition

    def reopen_logs(self) -> None:
        sup_logging.reopen_logs()

    def ready(self, status: str) -> None:
        pass

    def reloading(self) -> None:
        pass

    def inputs_read(self, fingerprint: str, settled: bool) -> None:
        pass

    def reload_finished(self, outcome: ReloadOutcome, status: str) -> None:
        pass

    def stopping(self) -> None:
        pass

    def worker_exited(self, pid: int) -> None:
        pass

    def worker_restarted(self) -> None:
        pass

    def tick(self, workers: Sequence[WorkerHandle]) -> None:
        pass

    def drift_changed(self, state: str) -> None:
        pass
