"""The state directory as a service: a backup of every committed config and one history
entry per reload attempt (``supervisor.config.store``), written from the main loop.

A failure to write (disk full, read-only) never stops the supervisor: it is logged
(``state.write_failed``), shown in ``status`` (``state.last_error``) and in the metric
``redis_gateway_state_write_ok``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import structlog

from supervisor.config import ConfigInputs, LoadedConfig
from supervisor.config.store import StateStore
from supervisor.reload.outcome import ReloadOutcome, ReloadResult

log = structlog.get_logger("redis_gateway.state")


def trigger_kind(trigger: str, inputs: ConfigInputs) -> str:
    """What asked for a reload, in the history's words: SIGHUP, file, ConfigMap, Secret,
    control socket, admin API, restore, start."""
    kinds = []
    for raw in trigger.split(","):
        part = raw.strip()
        if part.startswith("watch"):
            path = part.rsplit(": ", 1)[-1]
            kinds.append(_watched_kind(path, inputs))
        elif part.startswith("restore"):
            kinds.append("restore")
        else:
            kinds.append(part)
    return ",".join(dict.fromkeys(kinds))


def _watched_kind(path: str, inputs: ConfigInputs) -> str:
    configmap = inputs.configmap_dir or inputs.env.get("REDIS_GATEWAY_CONFIGMAP_DIR")
    secrets = inputs.secrets_dir or inputs.env.get("REDIS_GATEWAY_SECRETS_DIR")
    for directory, kind in ((configmap, "ConfigMap"), (secrets, "Secret")):
        if directory and Path(path).is_relative_to(Path(directory)):
            return kind
    return "file"


class StateService:
    """Hooks: ``ready`` (the boot config), ``committed``, ``reload_finished``."""

    def __init__(
        self, store: StateStore | None, inputs: ConfigInputs, boot: LoadedConfig, version: int
    ) -> None:
        self.store = store
        self._inputs = inputs
        self._loaded = boot
        self._version = version
        self.last_error: str | None = None
        self.last_backup: int | None = None

    @property
    def ok(self) -> bool:
        return self.store is not None and self.last_error is None

    def describe(self) -> dict[str, object]:
        return {
            "dir": str(self.store.directory) if self.store is not None else None,
            "last_backup_version": self.last_backup,
            "last_error": self.last_error,
        }

    def _write(self, what: str, action: Callable[[], None]) -> None:
        if self.store is None:
            return
        try:
            action()
        except OSError as exc:
            self.last_error = f"{what}: {exc.strerror or exc}"
            log.error("state.write_failed", what=what, error=self.last_error)  # noqa: TRY400 - expected condition
            return
        self.last_error = None

    def ready(self, status: str) -> None:
        loaded, version = self._loaded, self._version
        self._write("backup", lambda: self._backup(loaded, version, "start", []))
        entry = {
            "time": time.time(),
            "trigger": "start",
            "trigger_kind": "start",
            "result": "started",
            "version": version,
            "hash": loaded.hash,
        }
        self._write("history", lambda: self._history(entry))

    def committed(self, loaded: LoadedConfig, version: int) -> None:
        self._loaded, self._version = loaded, version

    def reload_finished(self, outcome: ReloadOutcome, status: str) -> None:
        if outcome.result is ReloadResult.COMMITTED:
            loaded, version = self._loaded, outcome.version
            trigger, changed = outcome.trigger, outcome.changed
            self._write("backup", lambda: self._backup(loaded, version, trigger, changed))
        entry = {
            "time": outcome.finished_at,
            "trigger": outcome.trigger,
            "trigger_kind": trigger_kind(outcome.trigger, self._inputs),
            "result": str(outcome.result),
            "duration_seconds": round(outcome.duration_seconds, 4),
            "version_before": outcome.version - 1
            if outcome.result is ReloadResult.COMMITTED
            else outcome.version,
            "version": outcome.version,
            "hash": outcome.hash,
            "changed": outcome.changed,
            "errors": outcome.errors or ([outcome.error] if outcome.error else []),
            "reasons": outcome.reasons,
        }
        self._write("history", lambda: self._history(entry))

    def _backup(self, loaded: LoadedConfig, version: int, trigger: str, changed: list[str]) -> None:
        assert self.store is not None
        self.store.commit(loaded, version=version, trigger=trigger, changed=changed)
        self.last_backup = version

    def _history(self, entry: dict[str, object]) -> None:
        assert self.store is not None
        self.store.append_history(entry)
