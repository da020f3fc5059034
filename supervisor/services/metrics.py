"""The metrics endpoint as a service: the supervisor's series (``supervisor.metrics``)
and the workers' samples on one endpoint, started, stopped or moved as each committed
config says. prometheus-client is imported only once metrics are on (issue 3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import structlog

from gateway_worker.config import Config
from supervisor.config import LoadedConfig
from supervisor.reload.outcome import ReloadOutcome
from supervisor.services import ServiceError
from supervisor.workers.handle import WorkerHandle, WorkerState
from supervisor.workers.setup import WorkerSetup

if TYPE_CHECKING:
    from supervisor.metrics import MetricsServer, SupervisorMetrics

log = structlog.get_logger("redis_gateway.supervisor")


class MetricsService:
    """Hooks: ``committed``, ``reload_finished``, ``worker_exited``, ``worker_restarted``,
    ``tick`` (workers by state, the embedded Redis)."""

    def __init__(
        self,
        setup: WorkerSetup,
        loaded: LoadedConfig,
        version: int = 1,
        state_ok: Callable[[], bool] | None = None,
    ) -> None:
        self._setup = setup
        self._loaded = loaded
        self._version = version
        #: Whether backups and history are being written (``StateService.ok``).
        self._state_ok = state_ok
        self._drift = "in_sync"
        self.metrics: SupervisorMetrics | None = None
        self.server: MetricsServer | None = None

    def start(self) -> None:
        """At start-up: an endpoint that cannot bind is fatal (ServiceError)."""
        config = self._loaded.config
        if not config.observability.metrics.enabled:
            return
        from supervisor.metrics import MetricsError

        metrics, server = self._create(config)
        try:
            server.start()
        except MetricsError as exc:
            raise ServiceError(str(exc)) from exc
        metrics.set_config(
            version=self._version, config_hash=self._loaded.hash, profile=config.profile
        )

    def _create(self, config: Config) -> tuple[SupervisorMetrics, MetricsServer]:
        from prometheus_client import CollectorRegistry

        from supervisor.metrics import MetricsServer, SupervisorMetrics

        m = config.observability.metrics
        multiproc = self._setup.ensure_multiproc(config)
        registry = CollectorRegistry()
        self.metrics = SupervisorMetrics(registry)
        self.server = MetricsServer(m.host, m.port, m.path, registry, multiproc)
        return self.metrics, self.server

    def committed(self, loaded: LoadedConfig, version: int) -> None:
        """Start, stop or move the endpoint as the config says; never raises."""
        self._loaded = loaded
        config = loaded.config
        m = config.observability.metrics
        if self.metrics is None and not m.enabled:
            return  # never enabled: prometheus-client stays unimported
        from supervisor.metrics import MetricsError

        if self.metrics is None and m.enabled:
            self._create(config)[0].set_drift(self._drift)
        if self.metrics is not None:
            # Kept up to date while disabled, so re-enabling shows the truth.
            self.metrics.set_config(
                version=version, config_hash=loaded.hash, profile=config.profile
            )
        server = self.server
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

    def reload_finished(self, outcome: ReloadOutcome, status: str) -> None:
        if self.metrics is not None:
            self.metrics.reload(outcome.result, outcome.duration_seconds)

    def worker_exited(self, pid: int) -> None:
        self._setup.worker_exited(pid)

    def worker_restarted(self) -> None:
        if self.metrics is not None:
            self.metrics.worker_restart()

    def tick(self, workers: Sequence[WorkerHandle]) -> None:
        if self.metrics is None:
            return
        if self._state_ok is not None:
            self.metrics.set_state_ok(self._state_ok())
        counts = {str(s): 0 for s in WorkerState if s is not WorkerState.EXITED}
        for w in workers:
            if str(w.state) in counts:
                counts[str(w.state)] += 1
        self.metrics.set_workers(counts)
        embedded = self._setup.embedded
        if embedded is not None:
            self.metrics.set_embedded_redis(str(embedded.state), embedded.restarts)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()

    def drift_changed(self, state: str) -> None:
        self._drift = state
        if self.metrics is not None:
            self.metrics.set_drift(state)
