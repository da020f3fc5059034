"""Supervisor logging: the shared structlog setup, bound to ``process="supervisor"``.

The implementation lives in ``gateway_worker.observability.logging`` because workers use it too and
``gateway_worker`` never imports ``supervisor`` (DESIGN.md "Layout"). Hot reload: the
arbiter calls ``configure`` again after each commit; SIGUSR1 calls ``reopen_logs``.
"""

from __future__ import annotations

import os

from gateway_worker.config import LoggingConfig
from gateway_worker.observability.logging import (
    MASK,
    configure_logging,
    redact_secrets,
    reopen_logs,
)

__all__ = ["MASK", "configure", "redact_secrets", "reopen_logs"]


def configure(settings: LoggingConfig) -> None:
    """(Re)configure the supervisor's logs."""
    configure_logging(settings, process="supervisor", pid=os.getpid())
