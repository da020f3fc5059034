"""Prometheus metrics of the supervisor, plus the workers' metrics, on one endpoint.

API (the arbiter codes against exactly this)::

    registry = CollectorRegistry()
    metrics = SupervisorMetrics(registry)          # create it once the first config loaded
    metrics.set_config(version=1, config_hash="3f2a...", profile="prod")
    metrics.reload("committed", duration_seconds=0.8)
        # result: a supervisor.outcome.ReloadResult (or its value)
    metrics.set_workers({"starting": 0, "ready": 4, "draining": 2})
    metrics.worker_restart()
    metrics.set_embedded_redis("running", restarts=0)   # dev profile's embedded Redis

    mp = MultiprocessDir()                         # fresh, empty dir for this supervisor
    spawn_worker(env={**os.environ, **mp.env()})   # workers write their samples there
    mp.worker_exited(pid)                          # after reaping a worker
    server = MetricsServer("0.0.0.0", 9090, "/metrics", registry, mp)
    server.start()                                 # raises MetricsError if it cannot bind
    server.reconfigure(host, port, path)           # on reload; rebinds only if changed
    server.stop(); mp.cleanup()

Why this shape:

- Workers are separate interpreters, so their request metrics are written by
  prometheus-client's multiprocess mode (one mmap file per worker pid and metric type in
  ``PROMETHEUS_MULTIPROC_DIR``) and merged at scrape time by a ``MultiProcessCollector``.
  Counters and histograms of dead workers stay in the sum (totals never go backwards):
  ``worker_exited(pid)`` folds them into one archive file per type, so the directory
  does not grow with every reload. Gauges of a dead worker disappear only if the
  worker declared them with a ``live*`` multiprocess mode (``livesum``, ``liveall``...).
  The directory itself is ``supervisor.metrics_workers.MultiprocessDir``.
- The supervisor itself must *not* run in multiprocess mode: prometheus-client picks its
  value class from the environment when it is first imported, and the supervisor's own
  gauges (config version, workers by state) are process-local. This module therefore
  removes ``PROMETHEUS_MULTIPROC_DIR`` from the supervisor's environment before importing
  prometheus-client (and ``SupervisorMetrics`` restores the single-process value class
  if something imported prometheus-client earlier); only workers get the variable
  (``MultiprocessDir.env()``).
"""

from __future__ import annotations

import os

# Must run before prometheus_client is imported anywhere in the supervisor (see above).
for _name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"):
    os.environ.pop(_name, None)

import gzip  # noqa: E402 - after the environment fix-up above
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterable, Mapping  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from typing import Any  # noqa: E402

import structlog  # noqa: E402
from prometheus_client import (  # noqa: E402
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    values,
)
from prometheus_client.exposition import choose_encoder  # noqa: E402
from prometheus_client.metrics_core import Metric  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402

from gateway_worker.errors import GatewayError  # noqa: E402
from supervisor.metrics_workers import MultiprocessDir, readable_sample_files  # noqa: E402
from supervisor.reload.drift import DriftState  # noqa: E402
from supervisor.reload.outcome import ReloadResult  # noqa: E402

log = structlog.get_logger("redis_gateway.metrics")

DRIFT_STATES = tuple(str(s) for s in DriftState)
#: The one list of reload results (supervisor.outcome.ReloadResult), every label pre-created.
RELOAD_RESULTS = tuple(str(result) for result in ReloadResult)
RELOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)


class MetricsError(GatewayError):
    """The metrics endpoint cannot be served (names the address and the cause)."""


class SupervisorMetrics:
    """The supervisor's own series. Create it after the first config has loaded."""

    def __init__(self, registry: CollectorRegistry, process_metrics: bool = True) -> None:
        if values.ValueClass is not values.MutexValue:
            # prometheus_client was imported while PROMETHEUS_MULTIPROC_DIR was set (by
            # the operator, or before this module cleared it): its value class is chosen
            # at import time, and metrics pick it up when created. The supervisor's own
            # series are process-local, so put the single-process class back.
            log.warning("metrics.multiprocess_mode_disabled_in_supervisor")
            values.ValueClass = values.MutexValue
        # `*_created` series would double the series count of every counter and
        # histogram, and nothing here reads them (process-wide; fine in the supervisor).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self._create_reload_series(registry)
        self._version = Gauge(
            "redis_gateway_config_version",
            "Version of the running config (1 at start-up, +1 per committed reload).",
            registry=registry,
        )
        self._info = Gauge(
            "redis_gateway_config_info",
            "Always 1; labels identify the running config.",
            ["hash", "profile"],
            registry=registry,
        )
        self._workers = Gauge(
            "redis_gateway_workers", "Workers by state.", ["state"], registry=registry
        )
        self._restarts = Counter(
            "redis_gateway_worker_restarts",
            "Workers replaced after crashing or missing heartbeats.",
            registry=registry,
        )
        self._create_lifecycle_series(registry)
        self._registry = registry
        self._embedded: Gauge | None = None
        self._embedded_restarts: Counter | None = None
        self._embedded_restarts_seen = 0
        self._known_states: set[str] = set()
        self._lock = threading.Lock()
        # Start-up loaded a valid config, which counts as the first successful load
        # (Prometheus' own config_last_reload_* gauges behave the same way).
        self._last_success.set_to_current_time()
        self._last_successful.set(1)
        if process_metrics:
            try:
                ProcessCollector(registry=registry)
            except ValueError:  # the registry already has one (e.g. the default REGISTRY)
                pass

    def _create_lifecycle_series(self, registry: CollectorRegistry) -> None:
        self._drift = Gauge(
            "redis_gateway_config_drift",
            "1 for the current drift state of the running config against its sources "
            f"({', '.join(DRIFT_STATES)}), 0 for the others.",
            ["state"],
            registry=registry,
        )
        self.set_drift("in_sync")
        self._state_ok = Gauge(
            "redis_gateway_state_write_ok",
            "1 while backups and history are written to the state directory, 0 after a "
            "write failed (or when there is no usable state directory).",
            registry=registry,
        )
        self._state_ok.set(1)

    def set_drift(self, state: str) -> None:
        """The drift state changed (supervisor.reload.drift)."""
        for known in DRIFT_STATES:
            self._drift.labels(state=known).set(1 if known == state else 0)

    def set_state_ok(self, ok: bool) -> None:
        self._state_ok.set(1 if ok else 0)

    def _create_reload_series(self, registry: CollectorRegistry) -> None:
        self._reloads = Counter(
            "redis_gateway_reloads",
            f"Reloads by result ({', '.join(RELOAD_RESULTS)}).",
            ["result"],
            registry=registry,
        )
        for result in RELOAD_RESULTS:
            self._reloads.labels(result=result)
        self._duration = Histogram(
            "redis_gateway_reload_duration_seconds",
            "Time from a reload trigger to its outcome (all results).",
            buckets=RELOAD_BUCKETS,
            registry=registry,
        )
        self._last_success = Gauge(
            "redis_gateway_last_reload_success_timestamp_seconds",
            "Unix time of the last successful (committed or unchanged) reload, or start-up.",
            registry=registry,
        )
        self._last_successful = Gauge(
            "redis_gateway_last_reload_successful",
            "1 if the last reload succeeded (committed or unchanged), else 0.",
            registry=registry,
        )

    def reload(self, result: ReloadResult | str, duration_seconds: float) -> None:
        """Count one reload outcome and how long it took."""
        if result not in RELOAD_RESULTS:
            raise ValueError(f"reload result {result!r} is not one of {', '.join(RELOAD_RESULTS)}")
        known = ReloadResult(result)
        self._reloads.labels(result=str(known)).inc()
        self._duration.observe(max(0.0, duration_seconds))
        if known.ok:
            self._last_successful.set(1)
            self._last_success.set(time.time())
        elif known.failed:
            self._last_successful.set(0)
        # held / deferred decide nothing about success: the gauge keeps its value.

    def set_config(self, version: int, config_hash: str, profile: str) -> None:
        """The running config changed (start-up or commit)."""
        with self._lock:
            self._version.set(version)
            self._info.clear()
            self._info.labels(hash=config_hash, profile=profile).set(1)

    def set_workers(self, counts_by_state: Mapping[str, int]) -> None:
        """Current workers per state; states absent from the mapping drop to 0."""
        with self._lock:
            self._known_states.update(counts_by_state)
            for state in self._known_states:
                self._workers.labels(state=state).set(counts_by_state.get(state, 0))

    def worker_restart(self) -> None:
        """A worker was replaced after it died or stopped heart-beating."""
        self._restarts.inc()

    def set_embedded_redis(self, state: str, restarts: int) -> None:
        """The embedded Redis' state (``supervisor.workers.redis_keeper.RedisState``)
        and restart count; its series exist only once there is one."""
        with self._lock:
            if self._embedded is None:
                self._embedded = Gauge(
                    "redis_gateway_embedded_redis_up",
                    "1 while the embedded Redis (dev profile) answers, else 0.",
                    registry=self._registry,
                )
                self._embedded_restarts = Counter(
                    "redis_gateway_embedded_redis_restarts",
                    "Times the embedded Redis was restarted after it exited.",
                    registry=self._registry,
                )
            self._embedded.set(1 if state == "running" else 0)
            assert self._embedded_restarts is not None
            self._embedded_restarts.inc(max(0, restarts - self._embedded_restarts_seen))
            self._embedded_restarts_seen = max(restarts, self._embedded_restarts_seen)


class _Combined:
    """Collector over the supervisor registry and the workers' files, merged per scrape."""

    def __init__(
        self, registry: CollectorRegistry, multiproc: MultiprocessDir | str | None
    ) -> None:
        self._registry = registry
        self._path = multiproc.path if isinstance(multiproc, MultiprocessDir) else multiproc
        self._lock = multiproc.lock if isinstance(multiproc, MultiprocessDir) else threading.Lock()

    def collect(self) -> Iterable[Metric]:
        yield from self._registry.collect()
        if self._path:
            with self._lock:  # not while a dead worker's files are being folded
                files = readable_sample_files(self._path)
                # The multiprocess module has no annotations.
                merged = list(MultiProcessCollector.merge(files, accumulate=True))  # type: ignore[no-untyped-call]
            yield from merged


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # The supervisor may restart with the port in TIME_WAIT; rebinding must work.
    allow_reuse_address = True

    def __init__(self, host: str, port: int, owner: MetricsServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.owner = owner
        super().__init__((host, port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_GET(self) -> None:
        owner = self.server.owner
        if self.path.split("?", 1)[0] != owner.path:
            self._reply(404, "text/plain; charset=utf-8", b"not found\n")
            return
        try:
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            body = encoder(owner.collector)
        except Exception as exc:  # a corrupt worker file must not kill the endpoint
            log.exception("metrics.scrape_failed", error=str(exc))
            self._reply(500, "text/plain; charset=utf-8", b"metrics collection failed\n")
            return
        # Prometheus asks for gzip; every worker's series make the body grow quickly.
        accepts = self.headers.get("Accept-Encoding", "")
        gzipped = "gzip" in [part.split(";")[0].strip() for part in accepts.split(",")]
        self._reply(200, content_type, gzip.compress(body) if gzipped else body, gzipped)

    def _reply(self, status: int, content_type: str, body: bytes, gzipped: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # The signature of http.server's own method, which types its arguments as Any.
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood stderr; nothing to log per request."""


class MetricsServer:
    """HTTP endpoint serving ``registry`` plus the workers' multiprocess samples."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        registry: CollectorRegistry,
        multiproc_dir: MultiprocessDir | str | None,
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.collector = _Combined(registry, multiproc_dir)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def bound_port(self) -> int | None:
        """The port actually bound (differs from ``port`` when it was 0)."""
        return None if self._httpd is None else int(self._httpd.server_address[1])

    def start(self) -> None:
        """Bind and serve in a daemon thread. Raises MetricsError if it cannot bind."""
        if self._httpd is not None:
            return
        self._httpd, self._thread = self._serve(self.host, self.port)
        log.info("metrics.serving", host=self.host, port=self.bound_port, path=self.path)

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def reconfigure(self, host: str, port: int, path: str) -> None:
        """Apply a reloaded config. Rebinds only if host or port changed.

        The new address is bound before the old one is released; if that fails,
        MetricsError is raised and the old endpoint keeps serving unchanged.
        """
        if self._httpd is None or (host, port) == (self.host, self.port):
            self.host, self.port, self.path = host, port, path
            return
        httpd, thread = self._serve(host, port)
        self.stop()
        self.host, self.port, self.path = host, port, path
        self._httpd, self._thread = httpd, thread
        log.info("metrics.serving", host=host, port=self.bound_port, path=path)

    def _serve(self, host: str, port: int) -> tuple[_HTTPServer, threading.Thread]:
        try:
            httpd = _HTTPServer(host, port, self)
        except OSError as exc:
            raise MetricsError(
                f"observability.metrics: cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from exc
        thread = threading.Thread(
            target=httpd.serve_forever, name="redis-gateway-metrics", daemon=True
        )
        thread.start()
        return httpd, thread


__all__ = [
    "RELOAD_RESULTS",
    "MetricsError",
    "MetricsServer",
    "MultiprocessDir",
    "SupervisorMetrics",
]
