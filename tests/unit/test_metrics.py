"""Supervisor metrics and the aggregated endpoint, scraped over real HTTP.

Worker samples come from real child interpreters in prometheus-client multiprocess mode.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, values
from prometheus_client.parser import text_string_to_metric_families

from supervisor.metrics import (
    MetricsError,
    MetricsServer,
    MultiprocessDir,
    SupervisorMetrics,
)
from tests.helpers import free_port

# A stand-in worker: declares request metrics like a gateway worker would, reports
# them, then stays alive until its stdin closes.
WORKER = textwrap.dedent(
    """
    import sys
    from prometheus_client import Counter, Gauge, Histogram
    requests = Counter("redis_gateway_test_requests", "Requests.", ["route"])
    inflight = Gauge("redis_gateway_test_inflight", "In flight.", multiprocess_mode="livesum")
    latency = Histogram("redis_gateway_test_latency_seconds", "Latency.", buckets=(0.1, 1.0))
    n = int(sys.argv[1])
    requests.labels(route="/incr").inc(n)
    inflight.set(n)
    latency.observe(0.05)
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def sample_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        assert resp.status == 200
        return str(resp.read().decode())


@pytest.fixture
def mp_dir() -> Iterator[MultiprocessDir]:
    mp = MultiprocessDir()
    yield mp
    mp.cleanup()


class Worker:
    def __init__(self, mp: MultiprocessDir, n: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(n)],
            env={**os.environ, **mp.env()},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == b"ready\n"

    def exit(self) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.stdout.close()
        assert self.proc.wait(timeout=10) == 0
        return self.proc.pid

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def test_supervisor_series() -> None:
    registry = CollectorRegistry()
    metrics = SupervisorMetrics(registry, process_metrics=False)
    metrics.set_config(version=1, config_hash="aaa", profile="dev")
    metrics.set_config(version=2, config_hash="bbb", profile="prod")
    metrics.reload("committed", 0.8)
    metrics.reload("invalid", 0.01)
    metrics.set_workers({"ready": 4, "draining": 2})
    metrics.set_workers({"ready": 3})
    metrics.worker_restart()

    def get(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert get("redis_gateway_reloads_total", result="committed") == 1
    assert get("redis_gateway_reloads_total", result="invalid") == 1
    assert get("redis_gateway_reloads_total", result="readiness_failed") == 0
    assert get("redis_gateway_reload_duration_seconds_count") == 2
    assert get("redis_gateway_last_reload_successful") == 0
    assert get("redis_gateway_config_version") == 2
    assert get("redis_gateway_config_info", hash="bbb", profile="prod") == 1
    assert get("redis_gateway_config_info", hash="aaa", profile="dev") is None
    assert get("redis_gateway_workers", state="ready") == 3
    assert get("redis_gateway_workers", state="draining") == 0
    assert get("redis_gateway_worker_restarts_total") == 1
    assert get("redis_gateway_worker_restarts_created") is None
    stamp = get("redis_gateway_last_reload_success_timestamp_seconds")
    metrics.reload("unchanged", 0.001)
    assert get("redis_gateway_last_reload_successful") == 1
    assert (get("redis_gateway_last_reload_success_timestamp_seconds") or 0) >= (stamp or 0) > 0


def test_unknown_reload_result_is_refused() -> None:
    metrics = SupervisorMetrics(CollectorRegistry(), process_metrics=False)
    with pytest.raises(ValueError, match="'exploded' is not one of committed"):
        metrics.reload("exploded", 1.0)


def test_supervisor_is_not_in_multiprocess_mode(mp_dir: MultiprocessDir) -> None:
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert mp_dir.env() == {"PROMETHEUS_MULTIPROC_DIR": mp_dir.path}


def test_supervisor_metrics_leave_multiprocess_mode_if_imported_in_it() -> None:
    """prometheus_client imported while PROMETHEUS_MULTIPROC_DIR was set elsewhere."""
    original = values.ValueClass
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    try:
        registry = CollectorRegistry()
        metrics = SupervisorMetrics(registry, process_metrics=False)
        metrics.worker_restart()
        assert values.ValueClass is values.MutexValue
        assert registry.get_sample_value("redis_gateway_worker_restarts_total") == 1
    finally:
        values.ValueClass = original


def test_endpoint_aggregates_workers_and_cleans_up_dead_live_gauges(
    mp_dir: MultiprocessDir,
) -> None:
    registry = CollectorRegistry()
    metrics = SupervisorMetrics(registry)
    metrics.set_config(version=3, config_hash="ccc", profile="prod")
    server = MetricsServer("127.0.0.1", free_port(), "/metrics", registry, mp_dir)
    server.start()
    first, second = Worker(mp_dir, 3), Worker(mp_dir, 4)
    try:
        assert server.bound_port is not None
        values = sample_values(scrape(server.bound_port))
        assert values[("redis_gateway_config_version", ())] == 3
        assert values[("process_resident_memory_bytes", ())] > 0
        assert values[("redis_gateway_test_requests_total", (("route", "/incr"),))] == 7
        assert values[("redis_gateway_test_inflight", ())] == 7
        assert values[("redis_gateway_test_latency_seconds_count", ())] == 2

        mp_dir.worker_exited(first.exit())
        values = sample_values(scrape(server.bound_port))
        # Counters and histograms keep the dead worker's part; live gauges drop it.
        assert values[("redis_gateway_test_requests_total", (("route", "/incr"),))] == 7
        assert values[("redis_gateway_test_latency_seconds_count", ())] == 2
        assert values[("redis_gateway_test_inflight", ())] == 4

        mp_dir.worker_exited(second.exit())
        values = sample_values(scrape(server.bound_port))
        assert ("redis_gateway_test_inflight", ()) not in values
        assert values[("redis_gateway_test_requests_total", (("route", "/incr"),))] == 7
        assert values[("redis_gateway_test_latency_seconds_count", ())] == 2
        bucket = ("redis_gateway_test_latency_seconds_bucket", (("le", "0.1"),))
        assert values[bucket] == 2
        # Dead workers' files were folded into one archive per type.
        assert sorted(os.listdir(mp_dir.path)) == ["counter_archive.db", "histogram_archive.db"]
    finally:
        first.kill()
        second.kill()
        server.stop()


def test_folding_many_dead_workers_keeps_totals_monotonic_under_scrapes(
    mp_dir: MultiprocessDir,
) -> None:
    registry = CollectorRegistry()
    server = MetricsServer("127.0.0.1", free_port(), "/metrics", registry, mp_dir)
    server.start()
    assert server.bound_port is not None
    port = server.bound_port
    seen: list[float] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def scraper() -> None:
        while not stop.is_set():
            try:
                values = sample_values(scrape(port))
                seen.append(
                    values.get(("redis_gateway_test_requests_total", (("route", "/incr"),)), 0)
                )
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)
                return

    thread = threading.Thread(target=scraper)
    thread.start()
    try:
        for n in range(1, 7):
            worker = Worker(mp_dir, n)
            try:
                mp_dir.worker_exited(worker.exit())
            finally:
                worker.kill()
    finally:
        stop.set()
        thread.join(timeout=30)
        server.stop()
    assert not failures, failures
    assert seen == sorted(seen), "a counter total went backwards during folding"
    assert sample_values(generate_latest(server.collector).decode())[
        ("redis_gateway_test_requests_total", (("route", "/incr"),))
    ] == sum(range(1, 7))
    assert sorted(os.listdir(mp_dir.path)) == ["counter_archive.db", "histogram_archive.db"]


def test_empty_sample_file_of_a_killed_worker_does_not_break_scrapes(
    mp_dir: MultiprocessDir,
) -> None:
    """client_python#1199: a worker killed between creating and sizing its file."""
    worker = Worker(mp_dir, 5)
    dead_pid = 999_999
    empty = Path(mp_dir.path) / f"counter_{dead_pid}.db"
    empty.write_bytes(b"")
    server = MetricsServer("127.0.0.1", free_port(), "/metrics", CollectorRegistry(), mp_dir)
    server.start()
    try:
        assert server.bound_port is not None
        values = sample_values(scrape(server.bound_port))
        assert values[("redis_gateway_test_requests_total", (("route", "/incr"),))] == 5
        mp_dir.worker_exited(dead_pid)
        assert not empty.exists()
    finally:
        worker.kill()
        server.stop()


def test_wrong_path_is_404_and_reconfigure_rebinds(mp_dir: MultiprocessDir) -> None:
    registry = CollectorRegistry()
    SupervisorMetrics(registry, process_metrics=False)
    old_port = free_port()
    server = MetricsServer("127.0.0.1", old_port, "/metrics", registry, mp_dir)
    server.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            scrape(old_port, "/other")
        assert err.value.code == 404
        err.value.close()

        server.reconfigure("127.0.0.1", old_port, "/prom")  # same address: path only
        assert "redis_gateway_config_version" in scrape(old_port, "/prom")

        new_port = free_port()
        server.reconfigure("127.0.0.1", new_port, "/prom")
        assert "redis_gateway_config_version" in scrape(new_port, "/prom")
        with pytest.raises(urllib.error.URLError):
            scrape(old_port, "/prom")
    finally:
        server.stop()


def test_reconfigure_to_a_busy_port_keeps_the_old_endpoint(mp_dir: MultiprocessDir) -> None:
    registry = CollectorRegistry()
    SupervisorMetrics(registry, process_metrics=False)
    port = free_port()
    server = MetricsServer("127.0.0.1", port, "/metrics", registry, mp_dir)
    blocker = MetricsServer("127.0.0.1", free_port(), "/metrics", registry, None)
    server.start()
    blocker.start()
    try:
        assert blocker.bound_port is not None
        with pytest.raises(MetricsError, match=rf"127.0.0.1:{blocker.bound_port}"):
            server.reconfigure("127.0.0.1", blocker.bound_port, "/metrics")
        assert "redis_gateway_config_version" in scrape(port)
    finally:
        server.stop()
        blocker.stop()


def test_multiprocess_dir_cleanup(tmp_path: Path) -> None:
    mp = MultiprocessDir(str(tmp_path))
    assert Path(mp.path).parent == tmp_path
    (Path(mp.path) / "counter_1.db").write_bytes(b"")
    mp.worker_exited(999_999)  # nothing to remove: no error
    mp.cleanup()
    assert not Path(mp.path).exists()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_endpoint_on_ipv6() -> None:
    registry = CollectorRegistry()
    SupervisorMetrics(registry, process_metrics=False)
    server = MetricsServer("::1", 0, "/metrics", registry, None)
    server.start()
    try:
        url = f"http://[::1]:{server.bound_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert b"redis_gateway_config_version" in resp.read()
    finally:
        server.stop()


def test_corrupt_file_of_a_dead_worker_does_not_raise_into_the_arbiter(
    mp_dir: MultiprocessDir,
) -> None:
    corrupt = Path(mp_dir.path) / "counter_4242.db"
    # Header claims 1000 bytes used in a 16-byte file.
    corrupt.write_bytes((1000).to_bytes(4, "little") + b"\0" * 12)
    mp_dir.worker_exited(4242)  # logged, not raised
    assert corrupt.exists()  # left for an operator to look at


def test_gzip_when_the_scraper_asks_for_it() -> None:
    registry = CollectorRegistry()
    SupervisorMetrics(registry, process_metrics=False)
    server = MetricsServer("127.0.0.1", 0, "/metrics", registry, None)
    server.start()
    try:
        req = urllib.request.Request(
            f"http://127.0.0.1:{server.bound_port}/metrics",
            headers={"Accept-Encoding": "gzip"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert b"redis_gateway_config_version" in gzip.decompress(resp.read())
    finally:
        server.stop()
