"""The supervisor's optional services: the config watcher and the metrics endpoint.

Both are set up from the first config and re-applied after every committed reload
(``Services.apply``), so `supervisor.watch_config`, `watch_debounce_ms`,
`recheck_interval_seconds` and `observability.metrics.*` are hot-reloadable like the
rest of the config. A mixin of ``supervisor.runtime.Runtime``, which owns the
attributes declared here. prometheus-client and watchdog are imported only when their
service is enabled: a supervisor without them stays small (issue 3, RSS target).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from gateway_worker.config import Config
from supervisor.config import ConfigInputs, LoadedConfig, fingerprint_inputs

log = structlog.get_logger("redis_gateway.supervisor")

# The loader's own list (supervisor.config.sources.DOCUMENT_SUFFIXES), repeated here so
# the supervisor does not import the sources module just for four strings.
_OVERLAY_SUFFIXES = (".toml", ".yaml", ".yml", ".json")


class ServiceError(Exception):
    """A service cannot start at start-up (the runtime turns it into StartupError)."""


def watched_paths(inputs: ConfigInputs, loaded: LoadedConfig) -> list[Path]:
    """What the watcher must watch: the loader's inputs, plus the profile overlays
    that do not exist yet (`gateway.<profile>.toml` created later must reload)."""
    paths = list(loaded.watched_paths)
    main = inputs.config_path or (
        Path(inputs.env["REDIS_GATEWAY_CONFIG"]) if inputs.env.get("REDIS_GATEWAY_CONFIG")
        else None)
    if main is not None:
        profile = loaded.config.profile
        for ext in dict.fromkeys((main.suffix, *_OVERLAY_SUFFIXES)):
            if ext:
                paths.append(main.with_name(f"{main.stem}.{profile}{ext}"))
    return list(dict.fromkeys(paths))


class Services:
    """Start, re-apply and stop the watcher and the metrics endpoint."""

    inputs: ConfigInputs
    loaded: LoadedConfig
    watcher: Any
    metrics: Any
    metrics_server: Any
    multiproc: Any

    def _on_file_change(self, reason: str, fingerprint: str) -> None:
        raise NotImplementedError

    def _discard_standby(self) -> None:
        raise NotImplementedError

    # -- watcher ---------------------------------------------------------------------------

    def _start_watcher(self, config: Config) -> None:
        from supervisor.watch import ConfigWatcher

        self.watcher = ConfigWatcher(
            paths=watched_paths(self.inputs, self.loaded),
            fingerprint=lambda: fingerprint_inputs(self.inputs),
            on_change=self._on_file_change,
            debounce_seconds=config.supervisor.watch_debounce_ms / 1000,
            recheck_interval_seconds=config.supervisor.recheck_interval_seconds,
            settle_seconds=config.supervisor.watch_settle_ms / 1000,
        )
        self.watcher.start()

    def _apply_watcher(self, config: Config) -> None:
        s = config.supervisor
        if not s.watch_config:
            if self.watcher is not None:
                self.watcher.stop()
                self.watcher = None
                log.info("watch.stopped", reason="supervisor.watch_config is false")
            return
        if self.watcher is None:
            self._start_watcher(config)
            log.info("watch.started")
            return
        self.watcher.reconfigure(debounce_seconds=s.watch_debounce_ms / 1000,
                                 recheck_interval_seconds=s.recheck_interval_seconds,
                                 settle_seconds=s.watch_settle_ms / 1000)
        self.watcher.update(watched_paths(self.inputs, self.loaded))

    def acknowledge_inputs(self) -> None:
        """The current inputs count as seen by the watcher."""
        self.inputs_seen(fingerprint_inputs(self.inputs), settled=True)

    def inputs_seen(self, fingerprint: str, settled: bool) -> None:
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

    # -- metrics ---------------------------------------------------------------------------

    def ensure_multiproc(self, config: Config) -> None:
        """Workers started for a config with metrics on need the multiprocess dir in
        their environment; standby workers spawned without it are replaced."""
        if self.multiproc is not None or not config.observability.metrics.enabled:
            return
        from supervisor.metrics import MultiprocessDir

        self.multiproc = MultiprocessDir()
        self._discard_standby()

    def _apply_metrics(self, config: Config, version: int) -> None:
        """Start, stop or move the endpoint as the config says; never raises."""
        m = config.observability.metrics
        if self.metrics is None and not m.enabled:
            return  # never enabled: prometheus-client stays unimported
        from supervisor.metrics import MetricsError

        if self.metrics is None and m.enabled:
            self._create_metrics(config)
        if self.metrics is not None:
            # Kept up to date while disabled, so re-enabling shows the truth.
            self.metrics.set_config(version=version, config_hash=self.loaded.hash,
                                    profile=config.profile)
        server = self.metrics_server
        if server is None:
            return
        try:
            if not m.enabled:
                if server.bound_port is not None:
                    server.stop()
                    log.info("metrics.stopped", reason="observability.metrics.enabled is false")
            elif server.bound_port is None:
                server.reconfigure(m.host, m.port, m.path)  # not serving: only records them
                server.start()
            else:
                server.reconfigure(m.host, m.port, m.path)
        except MetricsError as exc:  # never let metrics take the supervisor down
            log.error("metrics.reconfigure_failed", error=str(exc))  # noqa: TRY400 - expected condition, no traceback

    def _create_metrics(self, config: Config) -> None:
        from prometheus_client import CollectorRegistry

        from supervisor.metrics import MetricsServer, SupervisorMetrics

        m = config.observability.metrics
        self.ensure_multiproc(config)
        registry = CollectorRegistry()
        self.metrics = SupervisorMetrics(registry)
        self.metrics_server = MetricsServer(m.host, m.port, m.path, registry, self.multiproc)

    def _setup_metrics(self, config: Config) -> None:
        """At start-up: an endpoint that cannot bind is fatal (ServiceError)."""
        if not config.observability.metrics.enabled:
            return
        from supervisor.metrics import MetricsError

        self._create_metrics(config)
        try:
            self.metrics_server.start()
        except MetricsError as exc:
            raise ServiceError(str(exc)) from exc
        self.metrics.set_config(version=1, config_hash=self.loaded.hash,
                                profile=config.profile)

    def _stop_services(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if self.metrics_server is not None:
            self.metrics_server.stop()
