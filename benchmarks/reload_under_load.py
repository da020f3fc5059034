"""Reload under load: zero-downtime proof and reload latency of `redis-gateway run`.

    .venv/bin/python benchmarks/reload_under_load.py [--workers 4] [--reloads 24]

Starts a real Redis (the embedded valkey-server) and `redis-gateway run` on 127.0.0.1,
drives continuous load from separate processes, and meanwhile performs reloads that
mix valid changes (worker count, timeouts, log level), invalid configs, configs whose
new workers fail readiness (redis.url pointing at a closed port), an unchanged one,
and one SIGKILL of a serving worker. Then it prints:

- failed requests among those sent on new connections (target 0);
- lost writes: every new-connection request INCRs one counter, which must equal the
  number of successful replies (target 0 either way);
- keep-alive clients: races where the server closed an idle connection just as a
  request was sent (GETs are retried once, as RFC 9112 9.3.1 allows for idempotent
  requests; INCRs are not retried and are reported as ambiguous), and graceful closes
  (`Connection: close` on a reply during a drain);
- reload latency p50/p95: trigger -> every new worker ready (the supervisor's own
  `ready_seconds`), and the full round trip until the old generation has drained;
- invalid-config rejection time; the throughput dip during reloads;
- supervisor and worker RSS.

Reloads are requested over the control socket, exactly as `redis-gateway reload` does
(minus the CLI's interpreter start-up). Bounded in time (about a minute and a half).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from supervisor.control import request as control_request  # noqa: E402
from supervisor.embedded_redis import EmbeddedRedis, free_port  # noqa: E402

BUCKET = 0.1  # seconds per throughput bucket
NEW_KEY = "bench:new"
KA_KEY = "bench:keepalive"


# -- load generators (separate processes) ---------------------------------------------


def new_connection_client(port: int, stop: Any, out: Any) -> None:
    """One TCP connection per request (`Connection: close`): every failure counts."""
    request = (
        f"GET /incr/{NEW_KEY} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    ).encode()
    ok = failed = 0
    errors: Counter[str] = Counter()
    buckets: Counter[int] = Counter()
    failed_at: list[float] = []
    slow: list[tuple[float, float]] = []  # (sent, seconds) of requests over 100 ms
    while not stop.is_set():
        sent = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
                sock.sendall(request)
                chunks = []
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
            reply = b"".join(chunks)
            head, _, body = reply.partition(b"\r\n\r\n")
            if head.startswith(b"HTTP/1.1 200") and b'"result"' in body:
                ok += 1
                now = time.monotonic()
                buckets[int(now / BUCKET)] += 1
                if now - sent > 0.1:
                    slow.append((sent, now - sent))
            else:
                failed += 1
                failed_at.append(sent)
                errors[head.split(b"\r\n", 1)[0].decode(errors="replace") or "empty reply"] += 1
        except OSError as exc:
            failed += 1
            failed_at.append(sent)
            errors[type(exc).__name__] += 1
    out.put(
        {
            "kind": "new",
            "ok": ok,
            "failed": failed,
            "errors": dict(errors),
            "buckets": dict(buckets),
            "failed_at": failed_at,
            "slow": slow,
        }
    )


def keepalive_client(port: int, stop: Any, out: Any) -> None:
    """A persistent connection alternating INCR (not retried) and GET (retried once)."""
    stats: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    buckets: Counter[int] = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    race_at: list[float] = []
    n = 0
    while not stop.is_set():
        n += 1
        is_incr = n % 2 == 1
        path = f"/incr/{KA_KEY}" if is_incr else f"/get/{KA_KEY}"
        for attempt in (1, 2):
            sent = time.monotonic()
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    stats["graceful_close"] += 1
                if resp.status == 200 and b'"result"' in body:
                    stats["incr_ok" if is_incr else "get_ok"] += 1
                    buckets[int(time.monotonic() / BUCKET)] += 1
                else:
                    stats["failed"] += 1
                    errors[f"HTTP {resp.status}"] += 1
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                # The server closed the connection as we sent: nothing came back.
                conn.close()
                race_at.append(sent)
                if is_incr:
                    stats["race_incr_not_retried"] += 1
                    errors[f"race on INCR: {type(exc).__name__}"] += 1
                    break
                if attempt == 1:
                    stats["race_get_retried"] += 1
                    continue
                stats["failed"] += 1
                errors[f"retry failed: {type(exc).__name__}"] += 1
            except OSError as exc:
                conn.close()
                stats["failed"] += 1
                errors[type(exc).__name__] += 1
                break
    conn.close()
    out.put(
        {
            "kind": "keepalive",
            **stats,
            "errors": dict(errors),
            "buckets": dict(buckets),
            "race_at": race_at,
        }
    )


# -- the supervisor under test ---------------------------------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(config: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in values.items())
        lines.append("")
    return "\n".join(lines)


class Gateway:
    def __init__(self, workdir: Path, redis_url: str, workers: int, loop: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.control = str(workdir / "control.sock")
        self.config_path = workdir / "gateway.toml"
        self.base: dict[str, dict[str, Any]] = {
            "server": {
                "host": "127.0.0.1",
                "port": self.port,
                "workers": workers,
                "graceful_shutdown_timeout_seconds": 10,
                "reload_readiness_timeout_seconds": 10,
            },
            "redis": {"url": redis_url},
            "observability.logging": {"level": "INFO", "format": "json"},
            "observability.metrics": {"port": free_port()},
            # Reloads come from the control socket only, so each one is attributable.
            "supervisor": {"control_socket": self.control, "watch_config": False},
        }
        self.write(self.base)
        self.log = (workdir / "supervisor.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("redis-gateway")),
                "run",
                "--config",
                str(self.config_path),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "GATEWAY_WORKER_LOOP": loop},
        )

    def write(self, config: dict[str, dict[str, Any]] | str) -> None:
        text = config if isinstance(config, str) else render(config)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)

    def status(self) -> dict[str, Any]:
        reply = control_request(self.control, {"cmd": "status"}, timeout=5)
        return reply["status"]  # type: ignore[no-any-return]

    def serving(self, workers: int) -> bool:
        if self.proc.poll() is not None:
            log = (self.workdir / "supervisor.log").read_text()[-2000:]
            raise RuntimeError(f"the supervisor exited with {self.proc.returncode}:\n{log}")
        try:
            st = self.status()
        except Exception:
            return False
        ready = [
            w
            for w in st["workers"]
            if w["state"] == "ready" and w["generation"] == st["generation"]
        ]
        return len(ready) == workers and not st["reload_in_progress"]

    def reload(self) -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        reply = control_request(self.control, {"cmd": "reload"}, timeout=60)
        return reply["reload"], time.monotonic() - started

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def rss_mb(pid: int, serving: set[int]) -> tuple[float, list[float], list[float]]:
    """RSS of the supervisor, of its serving workers, and of its other children
    (warm standby workers, draining ones)."""
    sup = psutil.Process(pid)
    workers, others = [], []
    for child in sup.children(recursive=True):
        try:
            rss = child.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            continue
        (workers if child.pid in serving else others).append(rss)
    return sup.memory_info().rss / 2**20, workers, others


def uss_mb(pid: int) -> float:
    """Memory only this process holds (RSS minus pages shared with other processes)."""
    return psutil.Process(pid).memory_full_info().uss / 2**20


def plan(
    base: dict[str, dict[str, Any]], workers: int, count: int, closed_port: int
) -> list[tuple[str, str, Any]]:
    """(kind, description, config) for each reload, in order."""

    def changed(**sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
        cfg = {k: dict(v) for k, v in base.items()}
        for section, values in sections.items():
            cfg[section.replace("__", ".")].update(values)
        return cfg

    fewer = max(1, workers - 1)
    cycle: list[tuple[str, str, Any]] = [
        ("valid", f"server.workers {workers} -> {fewer}", changed(server={"workers": fewer})),
        ("valid", f"server.workers {fewer} -> {workers}", changed(server={"workers": workers})),
        ("valid", "log level WARNING", changed(observability__logging={"level": "WARNING"})),
        ("invalid", "server.workers = -1", changed(server={"workers": -1})),
        ("valid", "request timeout 20 s", changed(server={"request_timeout_seconds": 20})),
        (
            "readiness",
            "redis.url -> closed port",
            changed(redis={"url": f"redis://127.0.0.1:{closed_port}"}),
        ),
        ("valid", "keep-alive timeout 3 s", changed(server={"keepalive_timeout_seconds": 3})),
        ("invalid", "TOML syntax error", "[server\nport = \n"),
        ("valid", "log level INFO", changed(observability__logging={"level": "INFO"})),
        ("unchanged", "same file rewritten", None),  # filled below: the current config
        ("valid", "graceful timeout 8 s", changed(server={"graceful_shutdown_timeout_seconds": 8})),
        ("invalid", "unknown key server.wrokers", changed(server={"wrokers": 2})),
    ]
    return [cycle[i % len(cycle)] for i in range(count)]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--reloads", type=int, default=24)
    parser.add_argument(
        "--new-clients", type=int, default=3, help="processes opening one connection per request"
    )
    parser.add_argument(
        "--keepalive-clients", type=int, default=2, help="processes on persistent connections"
    )
    parser.add_argument(
        "--budget", type=float, default=105.0, help="stop starting reloads after this many seconds"
    )
    parser.add_argument(
        "--worker-loop",
        choices=("auto", "asyncio"),
        default="auto",
        help="workers' event loop (auto: uvloop when installed)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="redis-gateway-bench-"))
    store = EmbeddedRedis()
    store.start()
    gateway: Gateway | None = None
    clients: list[Any] = []
    ctx = mp.get_context("fork")
    stop, out = ctx.Event(), ctx.Queue()
    began = time.monotonic()
    load_at_start = os.getloadavg()[0]
    try:
        db = redis.Redis.from_url(store.url)
        db.flushall()
        gateway = Gateway(workdir, store.url, args.workers, args.worker_loop)
        wait_for(
            lambda: gateway is not None and gateway.serving(args.workers),
            60,
            "the first generation",
        )
        boot_seconds = time.monotonic() - began

        # Where reload time goes: one worker's interpreter start + imports, alone ...
        import_probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import time; t = time.perf_counter(); "
                "import gateway_worker.__main__, gateway_worker.app, gateway_worker.server, "
                "uvicorn, uvloop; print(time.perf_counter() - t)",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
            timeout=60,
        )
        t = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
        interpreter_seconds = time.monotonic() - t
        worker_import_seconds = float(import_probe.stdout.strip())
        # ... and two reloads of the whole generation without any load.
        quiet_ready: list[float] = []
        for level in ("WARNING", "INFO"):
            gateway.write(
                {**gateway.base, "observability.logging": {"level": level, "format": "json"}}
            )
            outcome, _ = gateway.reload()
            if outcome.get("ready_seconds") is not None:
                quiet_ready.append(outcome["ready_seconds"])

        for _ in range(args.new_clients):
            clients.append(
                ctx.Process(target=new_connection_client, args=(gateway.port, stop, out))
            )
        for _ in range(args.keepalive_clients):
            clients.append(ctx.Process(target=keepalive_client, args=(gateway.port, stop, out)))
        for proc in clients:
            proc.start()
        time.sleep(2.0)  # steady-state load before the first reload (baseline buckets)

        closed_port = free_port()
        current: dict[str, dict[str, Any]] = gateway.base
        windows: list[tuple[float, float]] = []
        ready_latency: list[float] = []
        committed_round_trip: list[float] = []
        drained_after: list[float] = []  # trigger -> old generation gone
        invalid_times: list[tuple[float, float]] = []  # (supervisor, round trip)
        readiness_times: list[float] = []
        outcomes: Counter[str] = Counter()
        unexpected: list[str] = []
        kill_report: dict[str, Any] = {}
        kill_at = float("nan")
        phases: list[tuple[float, float, float]] = []  # committed: trigger, ready, done
        peak_sup_rss = 0.0
        done = 0
        for i, (kind, what, planned) in enumerate(
            plan(gateway.base, args.workers, args.reloads, closed_port)
        ):
            if time.monotonic() - began > args.budget:
                print(f"time budget reached after {done} reloads", file=sys.stderr)
                break
            if i == args.reloads // 2:
                # SIGKILL one serving worker mid-load: it must be replaced, nothing lost.
                st = gateway.status()
                victim = next(w for w in st["workers"] if w["state"] == "ready")
                t0 = time.monotonic()
                kill_at = t0
                os.kill(victim["pid"], signal.SIGKILL)
                wanted = st["desired_workers"]
                victim_pid: int = victim["pid"]

                def replaced(wanted: int = wanted, victim_pid: int = victim_pid) -> bool:
                    assert gateway is not None
                    pids = [w["pid"] for w in gateway.status()["workers"]]
                    return gateway.serving(wanted) and victim_pid not in pids

                wait_for(replaced, 30, "the killed worker's replacement")
                kill_report = {
                    "pid": victim["pid"],
                    "replaced_seconds": round(time.monotonic() - t0, 3),
                }
            cfg = current if kind == "unchanged" else planned
            gateway.write(cfg)
            t0 = time.monotonic()
            outcome, round_trip = gateway.reload()
            # The reply may come before the old generation finished draining; the
            # reload is over (and the next one can start) only then.
            drain_deadline = time.monotonic() + 30
            while gateway.status()["reload_in_progress"] and time.monotonic() < drain_deadline:
                time.sleep(0.02)
            t2 = time.monotonic()
            done += 1
            result = outcome["result"]
            outcomes[result] += 1
            expected = {
                "valid": "committed",
                "invalid": "invalid",
                "readiness": "readiness_failed",
                "unchanged": "unchanged",
            }[kind]
            if result != expected:
                unexpected.append(
                    f"#{i + 1} {what}: expected {expected}, got {result} "
                    f"({outcome.get('error') or outcome.get('errors')})"
                )
            if result == "committed":
                current = cfg
                windows.append((t0, t2))
                if outcome.get("ready_seconds") is not None:
                    phases.append((t0, t0 + outcome["ready_seconds"], t2))
                committed_round_trip.append(round_trip)
                drained_after.append(t2 - t0)
                if outcome.get("ready_seconds") is not None:
                    ready_latency.append(outcome["ready_seconds"])
            elif result == "invalid":
                invalid_times.append((outcome["duration_seconds"], round_trip))
            elif result == "readiness_failed":
                windows.append((t0, t2))
                readiness_times.append(round_trip)
            sup_rss = psutil.Process(gateway.proc.pid).memory_info().rss / 2**20
            peak_sup_rss = max(peak_sup_rss, sup_rss)
            print(
                f"  reload {i + 1:2d} {what:32s} -> {result:16s} {round_trip * 1000:7.0f} ms"
                + (f", drained {(t2 - t0) * 1000:.0f} ms" if result == "committed" else "")
                + (
                    f" (ready {outcome['ready_seconds'] * 1000:.0f} ms)"
                    if outcome.get("ready_seconds")
                    else ""
                ),
                flush=True,
            )
            # Let the load settle so baseline buckets exist between reloads, and give
            # the supervisor a moment to refill its warm standby workers (reloads in
            # production are minutes apart, not back to back).
            settle_until = time.monotonic() + 1.5
            time.sleep(0.3)
            while time.monotonic() < settle_until:
                st = gateway.status()
                if st.get("standby_workers", 0) >= min(4, st["desired_workers"]):
                    break
                time.sleep(0.05)

        st = gateway.status()
        serving_pids = {w["pid"] for w in st["workers"] if w["state"] == "ready"}
        sup_rss, worker_rss, other_rss = rss_mb(gateway.proc.pid, serving_pids)
        sup_uss = uss_mb(gateway.proc.pid)
        time.sleep(1.0)  # trailing baseline
        stop.set()
        results = [out.get(timeout=30) for _ in clients]
        for proc in clients:
            proc.join(timeout=10)
        final_status = gateway.status()
        exit_code = gateway.stop()

        new = [r for r in results if r["kind"] == "new"]
        ka = [r for r in results if r["kind"] == "keepalive"]
        new_ok = sum(r["ok"] for r in new)
        failed_at = [t for r in new for t in r["failed_at"]]
        # A request in flight on the worker we SIGKILLed dies with it (it was sent just
        # before the kill); those are reported apart from failures caused by reloads.
        with_killed = [t for t in failed_at if kill_at - 1.0 <= t <= kill_at]
        new_failed = len(failed_at) - len(with_killed)
        new_errors: Counter[str] = Counter()
        for r in new:
            new_errors.update(r["errors"])
        counter = int(db.get(NEW_KEY) or 0)
        ka_counter = int(db.get(KA_KEY) or 0)
        # Keep-alive requests that got no reply: on the SIGKILLed worker (expected, it
        # died mid-request), or during a reload (an idle-close race in the drain).
        race_at = [t for r in ka for t in r["race_at"]]
        races_at_kill = sum(1 for t in race_at if kill_at - 1.0 <= t <= kill_at + 0.1)
        ka_stats: Counter[str] = Counter()
        ka_errors: Counter[str] = Counter()
        for r in ka:
            ka_stats.update({k: v for k, v in r.items() if isinstance(v, int)})
            ka_errors.update(r["errors"])

        buckets: Counter[int] = Counter()
        for r in results:
            buckets.update({int(k): v for k, v in r["buckets"].items()})
        # Ignore the ramp-up and wind-down half-seconds at both ends.
        first, last = (min(buckets), max(buckets)) if buckets else (0, 0)
        series = {b: buckets.get(b, 0) / BUCKET for b in range(first + 5, last - 5)}

        def in_window(b: int) -> bool:
            start, end = b * BUCKET, (b + 1) * BUCKET
            return any(start < w1 and end > w0 for w0, w1 in windows)

        slow = sorted((d, t) for r in new for t, d in r["slow"])
        in_any_window = [any(w0 - 0.1 <= t <= w1 for w0, w1 in windows) for _, t in slow]
        slowest = slow[-1] if slow else None
        # Which phase of a committed reload a slow request was sent in: new generation
        # starting (CPU taken by booting workers), or old generation draining.
        slow_starting = sum(1 for _, t in slow if any(a - 0.1 <= t <= b for a, b, _ in phases))
        slow_draining = sum(1 for _, t in slow if any(b < t <= c for _, b, c in phases))

        steady = [v for b, v in series.items() if not in_window(b)]
        during = [v for b, v in series.items() if in_window(b)]
        baseline = statistics.median(steady) if steady else float("nan")
        during_mean = statistics.mean(during) if during else float("nan")

        report = {
            "workers": args.workers,
            "worker_loop": args.worker_loop,
            "reloads": done,
            "outcomes": dict(outcomes),
            "unexpected_outcomes": unexpected,
            "boot_seconds": round(boot_seconds, 2),
            "new_connection_requests_ok": new_ok,
            "new_connection_requests_failed": new_failed,
            "new_connection_requests_lost_with_sigkilled_worker": len(with_killed),
            "new_connection_errors": dict(new_errors),
            "counter_value": counter,
            "lost_writes": new_ok - counter if counter <= new_ok else 0,
            # Applied but the reply never arrived: only acceptable for the SIGKILLed one.
            "unacknowledged_writes": counter - new_ok if counter > new_ok else 0,
            "keepalive": dict(ka_stats),
            "keepalive_errors": dict(ka_errors),
            "keepalive_races_with_sigkilled_worker": races_at_kill,
            "keepalive_races_during_reloads": sum(
                1 for t in race_at if any(w0 - 0.1 <= t <= w1 for w0, w1 in windows)
            ),
            "keepalive_incr_counter_minus_ok": ka_counter - ka_stats["incr_ok"],
            "python_interpreter_start_s": round(interpreter_seconds, 3),
            "worker_imports_s": round(worker_import_seconds, 3),
            "reload_ready_without_load_s": [round(x, 3) for x in quiet_ready],
            "reload_ready_p50_s": round(percentile(ready_latency, 0.5), 3),
            "reload_ready_p95_s": round(percentile(ready_latency, 0.95), 3),
            "reload_committed_round_trip_p50_s": round(percentile(committed_round_trip, 0.5), 3),
            "reload_committed_round_trip_p95_s": round(percentile(committed_round_trip, 0.95), 3),
            "reload_until_old_generation_gone_p50_s": round(percentile(drained_after, 0.5), 3),
            "reload_until_old_generation_gone_p95_s": round(percentile(drained_after, 0.95), 3),
            "invalid_rejected_supervisor_max_ms": round(
                max((s for s, _ in invalid_times), default=float("nan")) * 1000, 1
            ),
            "invalid_rejected_round_trip_max_ms": round(
                max((r for _, r in invalid_times), default=float("nan")) * 1000, 1
            ),
            "readiness_failed_round_trip_p50_s": round(percentile(readiness_times, 0.5), 3),
            "throughput_baseline_rps": round(baseline) if steady else None,
            "throughput_during_reloads_mean_rps": round(during_mean) if during else None,
            "throughput_dip_percent": round(100 * (1 - during_mean / baseline), 1)
            if steady and during
            else None,
            "throughput_worst_bucket_during_reloads_rps": round(min(during)) if during else None,
            "new_connection_slower_than_100ms": len(slow),
            "new_connection_slower_than_500ms": sum(1 for d, _ in slow if d > 0.5),
            "new_connection_slow_during_reloads": sum(in_any_window),
            "new_connection_slow_while_new_generation_starts": slow_starting,
            "new_connection_slow_while_old_generation_drains": slow_draining,
            "new_connection_max_latency_s": round(slowest[0], 3) if slowest else None,
            # Clusters at 1 s / 3 s would be TCP SYN retransmissions (a dropped SYN).
            "new_connection_slow_histogram_s": dict(
                sorted(Counter(f"{d:.1f}" for d, _ in slow).items())
            ),
            "new_connection_max_latency_at_s_after_kill": round(slowest[1] - kill_at, 3)
            if slowest
            else None,
            "worker_sigkill": kill_report,
            "worker_restarts_seen": sum(w["restarts"] for w in final_status["workers"]),
            "supervisor_rss_mb": round(sup_rss, 1),
            "supervisor_rss_peak_mb": round(peak_sup_rss, 1),
            "supervisor_uss_mb": round(sup_uss, 1),
            "worker_rss_mb": [round(x, 1) for x in worker_rss],
            "standby_or_draining_rss_mb": [round(x, 1) for x in other_rss],
            "supervisor_exit_code": exit_code,
            "wall_seconds": round(time.monotonic() - began, 1),
            # Everything shares these CPUs: load, supervisor, workers, Redis.
            "cpus": os.cpu_count(),
            "loadavg_1m_at_start_and_end": [round(load_at_start, 2), round(os.getloadavg()[0], 2)],
        }
    finally:
        stop.set()
        for proc in clients:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        if gateway is not None:
            gateway.stop()
        store.stop()

    print()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    ok = (
        report["new_connection_requests_failed"] == 0
        and report["lost_writes"] == 0
        and report["unacknowledged_writes"]
        <= report["new_connection_requests_lost_with_sigkilled_worker"]
        and not report["unexpected_outcomes"]
        and report["keepalive"].get("failed", 0) == 0
    )
    print(f"\nlogs and config: {workdir}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
