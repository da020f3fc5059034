"""`redis-gateway run` once the config loaded: logging, build (``supervisor.builder``),
pidfile, the main loop, and the teardown after it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import structlog

from supervisor import logging as sup_logging
from supervisor.builder import StartupError, build
from supervisor.config import ConfigInputs, LoadedConfig
from supervisor.reload.lifecycle import Resumed

__all__ = ["StartupError", "run_supervisor"]

log = structlog.get_logger("redis_gateway.supervisor")


def run_supervisor(
    inputs: ConfigInputs,
    loaded: LoadedConfig,
    pidfile: Path | None,
    resumed: Resumed | None = None,
) -> int:
    """`redis-gateway run` after the config was loaded; returns the exit code.

    ``resumed``: ``loaded`` is the last good config (``run --resume-last-good``)."""
    try:
        sup_logging.configure(loaded.config.observability.logging)
    except OSError as exc:
        print(
            f"redis-gateway: cannot start: observability.logging.output "
            f"{loaded.config.observability.logging.output!r}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    try:
        supervisor = build(inputs, loaded, resumed)
    except StartupError as exc:
        log.error("supervisor.start_failed", error=str(exc))  # noqa: TRY400 - expected condition, no traceback
        print(f"redis-gateway: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        if pidfile is not None:
            try:
                pidfile.write_text(f"{os.getpid()}\n")
            except OSError as exc:
                print(
                    f"redis-gateway: cannot start: --pidfile {pidfile}: {exc.strerror or exc}",
                    file=sys.stderr,
                )
                pidfile = None
                return 1
        code = supervisor.run()
        if supervisor.boot_error:
            print(
                f"redis-gateway: the first generation could not boot: {supervisor.boot_error}",
                file=sys.stderr,
            )
        return code
    finally:
        supervisor.close()
        if pidfile is not None:
            try:
                pidfile.unlink()
            except FileNotFoundError:
                pass
