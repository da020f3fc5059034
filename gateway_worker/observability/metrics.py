"""Request and stream metrics of one worker (prometheus-client).

Under the supervisor, ``PROMETHEUS_MULTIPROC_DIR`` is set in every worker's
environment, so these values go to per-process files that the supervisor's endpoint
aggregates. Labels are bounded: the protocol (3 values), the command (known Redis
command names, else ``other``), the HTTP status code and a failure kind; for streams,
their kind (4 values), why they closed (``streams.outbox.REASONS``) and the worker's
generation (the supervisor's counter, one value per worker); never a key, a channel, a
value or a credential.
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway_worker.redis.commands import KNOWN

PREFIX = "redis_gateway_"
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


#: A batch is counted as one request under its kind, not under its first command.
BATCH_KINDS = frozenset({"PIPELINE", "MULTI-EXEC"})
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def command_label(name: str | None) -> str:
    """A command name safe as a label value: known names upper-case (and the batch
    kinds), else ``other``."""
    if not name:
        return "none"
    upper = name.upper()
    return upper if upper in KNOWN or upper in BATCH_KINDS else "other"


class RequestMetrics:
    """The worker's request metrics; one instance per process (see ``get()``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            PREFIX + "requests_total",
            "HTTP requests answered, by protocol, Redis command and HTTP status.",
            ["protocol", "command", "status"],
            registry=r,
        )
        self.latency = Histogram(
            PREFIX + "request_duration_seconds",
            "Time from request start to the last response byte, by protocol.",
            ["protocol"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            PREFIX + "redis_errors_total",
            "Redis failures seen by requests (unavailable, timeout).",
            ["kind"],
            registry=r,
        )
        self.rate_limited = Counter(
            PREFIX + "rate_limited_total", "Requests refused with 429.", registry=r
        )
        self.auth_failures = Counter(
            PREFIX + "auth_failures_total",
            "Requests refused by authentication, by HTTP status (401/403).",
            ["status"],
            registry=r,
        )
        self.batch_commands = Histogram(
            PREFIX + "batch_commands",
            "Commands per batch request (command label PIPELINE or MULTI-EXEC).",
            ["command"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self._create_stream_series(r)
        # Requests are counted in plain dicts and added to the Prometheus values by
        # flush() (about once a second, and at shutdown): a prometheus-client inc or
        # observe per request costs more than the rest of a cached GET.
        self._bounds = list(LATENCY_BUCKETS)
        self._counts: dict[tuple[str, str | None, int], int] = {}
        self._latency: dict[str, tuple[list[int], list[float]]] = {}
        self._batches: list[tuple[str, int]] = []

    def observe(
        self,
        protocol: str,
        command: str | None,
        status: int,
        seconds: float,
        batch_size: int | None = None,
    ) -> None:
        """Count one answered request (the hot path: no Prometheus call here)."""
        if batch_size is not None:
            self._batches.append((command_label(command), batch_size))
        key = (protocol, command, status)
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        hist = self._latency.get(protocol)
        if hist is None:
            hist = self._latency[protocol] = ([0] * (len(self._bounds) + 1), [0.0])
        hist[0][bisect_left(self._bounds, seconds)] += 1
        hist[1][0] += seconds

    def flush(self) -> None:
        """Move the counts gathered by ``observe`` into the Prometheus metrics."""
        counts, self._counts = self._counts, {}
        latency, self._latency = self._latency, {}
        batches, self._batches = self._batches, []
        for kind, size in batches:
            self.batch_commands.labels(kind).observe(size)
        for (protocol, command, status), n in counts.items():
            self.requests.labels(protocol, command_label(command), str(status)).inc(n)
        for protocol, (buckets, total) in latency.items():
            child = self.latency.labels(protocol)
            # prometheus-client has no bulk observe; its per-bucket values (not
            # cumulative: it sums at collection) and the sum are public enough to
            # have stayed the same since 0.4.
            values = child._buckets
            for i, n in enumerate(buckets):
                if n:
                    values[i].inc(n)
            child._sum.inc(total[0])

    def redis_error(self, kind: str) -> None:
        self.redis_errors.labels(kind).inc()

    def _create_stream_series(self, r: CollectorRegistry) -> None:
        #: The supervisor's number for this worker's generation ("0": not supervised).
        self.generation = "0"
        self.streams_open = Gauge(
            PREFIX + "streams_open",
            "Open streams (SSE, chunked SUBSCRIBE, WebSocket), by kind and worker generation.",
            ["kind", "generation"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.streams_closed = Counter(
            PREFIX + "streams_closed_total",
            "Streams closed, by kind and reason (client, drain, slow_consumer, stalled, "
            "redis, shutdown, error).",
            ["kind", "reason"],
            registry=r,
        )
        self.streams_refused = Counter(
            PREFIX + "streams_refused_total",
            "Streams refused with 503 because server.max_streams were open, by kind.",
            ["kind"],
            registry=r,
        )

    def set_generation(self, generation: int) -> None:
        """Label this process's streams with its worker generation (set once, at boot,
        before any stream opens: a gauge child is never moved between labels)."""
        self.generation = str(generation)

    def stream_opened(self, kind: str) -> None:
        self.streams_open.labels(kind, self.generation).inc()

    def stream_closed(self, kind: str, reason: str) -> None:
        self.streams_open.labels(kind, self.generation).dec()
        self.streams_closed.labels(kind, reason).inc()

    def stream_refused(self, kind: str) -> None:
        self.streams_refused.labels(kind).inc()


_instance: RequestMetrics | None = None


def get() -> RequestMetrics:
    """The process-wide instance (metric names can be registered only once per process
    in multiprocess mode, whatever the registry, and apps are rebuilt in tests)."""
    global _instance  # noqa: PLW0603 - one set of metrics per process by design
    if _instance is None:
        _instance = RequestMetrics()
    return _instance
