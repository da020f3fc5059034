"""The config watcher as a service: started from the first config, re-applied after
every commit (``supervisor.watch_config``, ``watch_debounce_ms``, ``watch_settle_ms``,
``recheck_interval_seconds`` are hot-reloadable), told which inputs a reload read.

watchdog is imported only when the watcher is on (issue 3, RSS target).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from gateway_worker.config import Config
from supervisor.config import ConfigInputs, LoadedConfig, fingerprint_inputs, overlay_candidates
from supervisor.triggers.inbox import ReloadRequester

if TYPE_CHECKING:
    from supervisor.triggers.watch import ConfigWatcher

log = structlog.get_logger("redis_gateway.supervisor")


def watched_paths(inputs: ConfigInputs, loaded: LoadedConfig) -> list[Path]:
    """What the watcher must watch: the loader's inputs, plus the profile overlays
    that do not exist yet (`gateway.<profile>.toml` created later must reload)."""
    paths = list(loaded.watched_paths)
    main = inputs.main_path
    if main is not None:
        paths.extend(overlay_candidates(main, loaded.config.profile))
    return list(dict.fromkeys(paths))


class WatcherService:
    """Hooks: ``committed`` (follow the new config), ``inputs_read`` (acknowledge)."""

    def __init__(
        self, inputs: ConfigInputs, loaded: LoadedConfig, triggers: ReloadRequester
    ) -> None:
        self._inputs = inputs
        self._loaded = loaded
        self._triggers = triggers
        self.watcher: ConfigWatcher | None = None

    def start(self, config: Config) -> None:
        from supervisor.triggers.watch import ConfigWatcher

        inputs = self._inputs
        self.watcher = ConfigWatcher(
            paths=watched_paths(inputs, self._loaded),
            fingerprint=lambda: fingerprint_inputs(inputs),
            on_change=self._on_change,
            debounce_seconds=config.supervisor.watch_debounce_ms / 1000,
            recheck_interval_seconds=config.supervisor.recheck_interval_seconds,
            settle_seconds=config.supervisor.watch_settle_ms / 1000,
        )
        self.watcher.start()

    def _on_change(self, reason: str, fingerprint: str) -> None:
        # On the watcher's thread: only enqueue (the inbox wakes the main loop).
        self._triggers.request_reload(f"watch: {reason}", fingerprint=fingerprint)

    def apply(self, config: Config) -> None:
        """Start, stop or re-tune the watcher as ``config`` says."""
        s = config.supervisor
        if not s.watch_config:
            if self.watcher is not None:
                self.watcher.stop()
                self.watcher = None
                log.info("watch.stopped", reason="supervisor.watch_config is false")
            return
        if self.watcher is None:
            self.start(config)
            log.info("watch.started")
            return
        self.watcher.reconfigure(
            debounce_seconds=s.watch_debounce_ms / 1000,
            recheck_interval_seconds=s.recheck_interval_seconds,
            settle_seconds=s.watch_settle_ms / 1000,
        )
        self.watcher.update(watched_paths(self._inputs, self._loaded))

    def committed(self, loaded: LoadedConfig, version: int) -> None:
        self._loaded = loaded
        try:
            self.apply(loaded.config)
        except Exception as exc:  # e.g. inotify limits: the periodic re-check remains
            log.error("watch.reconfigure_failed", error=str(exc))  # noqa: TRY400 - expected condition

    def acknowledge_inputs(self) -> None:
        """The current inputs count as seen by the watcher."""
        self.inputs_read(fingerprint_inputs(self._inputs), settled=True)

    def inputs_read(self, fingerprint: str, settled: bool) -> None:
        """A reload read inputs with this fingerprint: the watcher must not report
        that content again (edit + `systemctl reload` would otherwise reload twice).
        Not ``settled`` (a watcher reload read bytes other than those that settled):
        the watcher looks again once they settle."""
        if self.watcher is None:
            return
        if settled:
            self.watcher.acknowledge(fingerprint)
        else:
            self.watcher.forget()

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
