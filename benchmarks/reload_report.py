"""What `reload_under_load.py` measured, and the report it prints (see benchmarks/README.md).

Times are `time.monotonic()` values, comparable across the client processes (one
CLOCK_MONOTONIC per machine).
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmarks.load_clients import BUCKET


@dataclass
class Measurements:
    """Everything the driver records while it reloads."""

    began: float
    load_at_start: float
    boot_seconds: float = 0.0
    interpreter_seconds: float = 0.0
    worker_import_seconds: float = 0.0
    quiet_ready: list[float] = field(default_factory=list)
    windows: list[tuple[float, float]] = field(default_factory=list)  # reload: start, end
    phases: list[tuple[float, float, float]] = field(default_factory=list)  # trigger, ready, done
    ready_latency: list[float] = field(default_factory=list)
    committed_round_trip: list[float] = field(default_factory=list)
    drained_after: list[float] = field(default_factory=list)  # trigger -> old generation gone
    invalid_times: list[tuple[float, float]] = field(default_factory=list)  # supervisor, trip
    readiness_times: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    kill_at: float = float("nan")
    kill_report: dict[str, Any] = field(default_factory=dict)
    peak_sup_rss: float = 0.0
    done: int = 0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _max_ms(values: list[float]) -> float:
    return round(max(values, default=float("nan")) * 1000, 1)


def summarize(
    m: Measurements, results: list[dict[str, Any]], counter: int, ka_counter: int
) -> dict[str, Any]:
    """The report: ``results`` from the clients, the Redis counters read at the end."""
    new = [r for r in results if r["kind"] == "new"]
    ka = [r for r in results if r["kind"] == "keepalive"]
    new_ok = sum(r["ok"] for r in new)
    failed_at = [t for r in new for t in r["failed_at"]]
    # A request in flight on the worker we SIGKILLed dies with it (it was sent just
    # before the kill); those are reported apart from failures caused by reloads.
    with_killed = [t for t in failed_at if m.kill_at - 1.0 <= t <= m.kill_at]
    new_errors: Counter[str] = Counter()
    for r in new:
        new_errors.update(r["errors"])
    # Keep-alive requests that got no reply: on the SIGKILLed worker (expected, it
    # died mid-request), or during a reload (an idle-close race in the drain).
    race_at = [t for r in ka for t in r["race_at"]]
    ka_stats: Counter[str] = Counter()
    ka_errors: Counter[str] = Counter()
    for r in ka:
        ka_stats.update({k: v for k, v in r.items() if isinstance(v, int)})
        ka_errors.update(r["errors"])

    def in_reload(t: float) -> bool:
        return any(w0 - 0.1 <= t <= w1 for w0, w1 in m.windows)

    buckets: Counter[int] = Counter()
    for r in results:
        buckets.update({int(k): v for k, v in r["buckets"].items()})
    # Ignore the ramp-up and wind-down half-seconds at both ends.
    first, last = (min(buckets), max(buckets)) if buckets else (0, 0)
    series = {b: buckets.get(b, 0) / BUCKET for b in range(first + 5, last - 5)}

    def bucket_in_reload(b: int) -> bool:
        start, end = b * BUCKET, (b + 1) * BUCKET
        return any(start < w1 and end > w0 for w0, w1 in m.windows)

    steady = [v for b, v in series.items() if not bucket_in_reload(b)]
    during = [v for b, v in series.items() if bucket_in_reload(b)]
    baseline = statistics.median(steady) if steady else float("nan")
    during_mean = statistics.mean(during) if during else float("nan")

    slow = sorted((d, t) for r in new for t, d in r["slow"])
    slowest = slow[-1] if slow else None
    return {
        "reloads": m.done,
        "outcomes": dict(m.outcomes),
        "unexpected_outcomes": m.unexpected,
        "boot_seconds": round(m.boot_seconds, 2),
        "new_connection_requests_ok": new_ok,
        "new_connection_requests_failed": len(failed_at) - len(with_killed),
        "new_connection_requests_lost_with_sigkilled_worker": len(with_killed),
        "new_connection_errors": dict(new_errors),
        "counter_value": counter,
        "lost_writes": new_ok - counter if counter <= new_ok else 0,
        # Applied but the reply never arrived: only acceptable for the SIGKILLed one.
        "unacknowledged_writes": counter - new_ok if counter > new_ok else 0,
        "keepalive": dict(ka_stats),
        "keepalive_errors": dict(ka_errors),
        "keepalive_races_with_sigkilled_worker": sum(
            1 for t in race_at if m.kill_at - 1.0 <= t <= m.kill_at + 0.1
        ),
        "keepalive_races_during_reloads": sum(1 for t in race_at if in_reload(t)),
        "keepalive_incr_counter_minus_ok": ka_counter - ka_stats["incr_ok"],
        "python_interpreter_start_s": round(m.interpreter_seconds, 3),
        "worker_imports_s": round(m.worker_import_seconds, 3),
        "reload_ready_without_load_s": [round(x, 3) for x in m.quiet_ready],
        "reload_ready_p50_s": round(percentile(m.ready_latency, 0.5), 3),
        "reload_ready_p95_s": round(percentile(m.ready_latency, 0.95), 3),
        "reload_committed_round_trip_p50_s": round(percentile(m.committed_round_trip, 0.5), 3),
        "reload_committed_round_trip_p95_s": round(percentile(m.committed_round_trip, 0.95), 3),
        "reload_until_old_generation_gone_p50_s": round(percentile(m.drained_after, 0.5), 3),
        "reload_until_old_generation_gone_p95_s": round(percentile(m.drained_after, 0.95), 3),
        "invalid_rejected_supervisor_max_ms": _max_ms([s for s, _ in m.invalid_times]),
        "invalid_rejected_round_trip_max_ms": _max_ms([r for _, r in m.invalid_times]),
        "readiness_failed_round_trip_p50_s": round(percentile(m.readiness_times, 0.5), 3),
        "throughput_baseline_rps": round(baseline) if steady else None,
        "throughput_during_reloads_mean_rps": round(during_mean) if during else None,
        "throughput_dip_percent": round(100 * (1 - during_mean / baseline), 1)
        if steady and during
        else None,
        "throughput_worst_bucket_during_reloads_rps": round(min(during)) if during else None,
        "new_connection_slower_than_100ms": len(slow),
        "new_connection_slower_than_500ms": sum(1 for d, _ in slow if d > 0.5),
        "new_connection_slow_during_reloads": sum(1 for _, t in slow if in_reload(t)),
        # Which phase of a committed reload a slow request was sent in: new generation
        # starting (CPU taken by booting workers), or old generation draining.
        "new_connection_slow_while_new_generation_starts": sum(
            1 for _, t in slow if any(a - 0.1 <= t <= b for a, b, _ in m.phases)
        ),
        "new_connection_slow_while_old_generation_drains": sum(
            1 for _, t in slow if any(b < t <= c for _, b, c in m.phases)
        ),
        "new_connection_max_latency_s": round(slowest[0], 3) if slowest else None,
        # Clusters at 1 s / 3 s would be TCP SYN retransmissions (a dropped SYN).
        "new_connection_slow_histogram_s": dict(
            sorted(Counter(f"{d:.1f}" for d, _ in slow).items())
        ),
        "worker_sigkill": m.kill_report,
        "supervisor_rss_peak_mb": round(m.peak_sup_rss, 1),
        # Everything shares these CPUs: load, supervisor, workers, Redis.
        "cpus": os.cpu_count(),
        "loadavg_1m_at_start_and_end": [round(m.load_at_start, 2), round(os.getloadavg()[0], 2)],
    }


def passed(report: dict[str, Any]) -> bool:
    """The zero-downtime verdict (latency and memory targets are reported, not judged)."""
    return (
        report["new_connection_requests_failed"] == 0
        and report["lost_writes"] == 0
        and report["unacknowledged_writes"]
        <= report["new_connection_requests_lost_with_sigkilled_worker"]
        and not report["unexpected_outcomes"]
        and report["keepalive"].get("failed", 0) == 0
        and report["keepalive_races_during_reloads"] == 0
    )
