"""Supervisor logging as a service: reconfigured after every commit, reopened on SIGUSR1."""

from __future__ import annotations

import structlog

from supervisor import logging as sup_logging
from supervisor.config import LoadedConfig

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
