"""Reload under load: zero-downtime proof and reload latency of `redis-gateway run`.

    .venv/bin/python benchmarks/reload_under_load.py [--workers 4] [--reloads 24]
    .venv/bin/python benchmarks/reload_under_load.py --fast [--runs 20]   # see reload_fast.py

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
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.gateway_process import Gateway, render, wait_for  # noqa: E402
from benchmarks.load_clients import KA_KEY, NEW_KEY, keepalive_client, new_connection_client  # noqa: E402
from benchmarks.reload_report import Measurements, passed, summarize  # noqa: E402
from supervisor.embedded_redis import EmbeddedRedis, free_port  # noqa: E402

EXPECTED = {
    "valid": "committed",
    "invalid": "invalid",
    "readiness": "readiness_failed",
    "unchanged": "unchanged",
}


def rss_mb(pid: int, serving: set[int]) -> tuple[float, list[float], list[float]]:
    """RSS of the supervisor, of its serving workers, and of its other children
    (warm standby workers, draining ones)."""
    sup = psutil.Process(pid)
    workers: list[float] = []
    others: list[float] = []
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


# -- the run ---------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
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
    parser.add_argument(
        "--fast",
        action="store_true",
        help="60 mixed reloads 0.3 s apart, 8 client processes, watcher on, files "
        "rewritten with cp (benchmarks/reload_fast.py)",
    )
    parser.add_argument("--runs", type=int, default=1, help="--fast: consecutive runs")
    return parser.parse_args()


def measure_boot_costs(gateway: Gateway, m: Measurements) -> None:
    """Where reload time goes: one cold worker's interpreter start and imports, alone,
    and two reloads of the whole generation without any load."""
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; t = time.perf_counter(); "
            "import gateway_worker.__main__, gateway_worker.app, gateway_worker.serving.server, "
            "uvicorn, uvloop; print(time.perf_counter() - t)",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    m.worker_import_seconds = float(probe.stdout.strip())
    t = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
    m.interpreter_seconds = time.monotonic() - t
    for level in ("WARNING", "INFO"):
        gateway.write({**gateway.base, "observability.logging": {"level": level, "format": "json"}})
        outcome, _ = gateway.reload()
        if outcome.get("ready_seconds") is not None:
            m.quiet_ready.append(outcome["ready_seconds"])


def kill_a_worker(gateway: Gateway, m: Measurements) -> None:
    """SIGKILL one serving worker mid-load: it must be replaced, nothing else lost."""
    st = gateway.status()
    victim = next(w for w in st["workers"] if w["state"] == "ready")
    wanted: int = st["desired_workers"]
    m.kill_at = time.monotonic()
    os.kill(victim["pid"], signal.SIGKILL)

    def replaced() -> bool:
        pids = [w["pid"] for w in gateway.status()["workers"]]
        return gateway.serving(wanted) and victim["pid"] not in pids

    wait_for(replaced, 30, "the killed worker's replacement")
    m.kill_report = {
        "pid": victim["pid"],
        "replaced_seconds": round(time.monotonic() - m.kill_at, 3),
    }


def drive_reloads(gateway: Gateway, m: Measurements, args: argparse.Namespace) -> None:
    current: dict[str, dict[str, Any]] = gateway.base
    for i, (kind, what, planned) in enumerate(
        plan(gateway.base, args.workers, args.reloads, free_port())
    ):
        if time.monotonic() - m.began > args.budget:
            print(f"time budget reached after {m.done} reloads", file=sys.stderr)
            break
        if i == args.reloads // 2:
            kill_a_worker(gateway, m)
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
        m.done += 1
        result = outcome["result"]
        m.outcomes[result] += 1
        if result != EXPECTED[kind]:
            m.unexpected.append(
                f"#{i + 1} {what}: expected {EXPECTED[kind]}, got {result} "
                f"({outcome.get('error') or outcome.get('errors')})"
            )
        ready = outcome.get("ready_seconds")
        if result == "committed":
            current = cfg
            m.windows.append((t0, t2))
            m.committed_round_trip.append(round_trip)
            m.drained_after.append(t2 - t0)
            if ready is not None:
                m.phases.append((t0, t0 + ready, t2))
                m.ready_latency.append(ready)
        elif result == "invalid":
            m.invalid_times.append((outcome["duration_seconds"], round_trip))
        elif result == "readiness_failed":
            m.windows.append((t0, t2))
            m.readiness_times.append(round_trip)
        sup_rss = psutil.Process(gateway.proc.pid).memory_info().rss / 2**20
        m.peak_sup_rss = max(m.peak_sup_rss, sup_rss)
        print(
            f"  reload {i + 1:2d} {what:32s} -> {result:16s} {round_trip * 1000:7.0f} ms"
            + (f", drained {(t2 - t0) * 1000:.0f} ms" if result == "committed" else "")
            + (f" (ready {ready * 1000:.0f} ms)" if ready else ""),
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


def main() -> int:
    args = parse_args()
    if args.fast:
        from benchmarks.reload_fast import run_fast

        return run_fast(args, Gateway, render, wait_for)
    workdir = Path(tempfile.mkdtemp(prefix="redis-gateway-bench-"))
    store = EmbeddedRedis()
    store.start()
    gateway: Gateway | None = None
    clients: list[Any] = []
    ctx = mp.get_context("fork")
    stop, out = ctx.Event(), ctx.Queue()
    m = Measurements(began=time.monotonic(), load_at_start=os.getloadavg()[0])
    try:
        db = redis.Redis.from_url(store.url)
        db.flushall()
        gw = gateway = Gateway(workdir, store.url, args.workers, args.worker_loop)
        wait_for(lambda: gw.serving(args.workers), 60, "the first generation")
        m.boot_seconds = time.monotonic() - m.began
        measure_boot_costs(gw, m)

        clients = [
            ctx.Process(target=new_connection_client, args=(gw.port, stop, out))
            for _ in range(args.new_clients)
        ] + [
            ctx.Process(target=keepalive_client, args=(gw.port, stop, out))
            for _ in range(args.keepalive_clients)
        ]
        for proc in clients:
            proc.start()
        time.sleep(2.0)  # steady-state load before the first reload (baseline buckets)
        drive_reloads(gw, m, args)

        st = gw.status()
        serving_pids = {w["pid"] for w in st["workers"] if w["state"] == "ready"}
        sup_rss, worker_rss, other_rss = rss_mb(gw.proc.pid, serving_pids)
        sup_uss = uss_mb(gw.proc.pid)
        time.sleep(1.0)  # trailing baseline
        stop.set()
        results = [out.get(timeout=30) for _ in clients]
        for proc in clients:
            proc.join(timeout=10)
        report = {
            "workers": args.workers,
            "worker_loop": args.worker_loop,
            **summarize(m, results, int(db.get(NEW_KEY) or 0), int(db.get(KA_KEY) or 0)),
            "worker_restarts_seen": sum(w["restarts"] for w in gw.status()["workers"]),
            "supervisor_rss_mb": round(sup_rss, 1),
            "supervisor_uss_mb": round(sup_uss, 1),
            "worker_rss_mb": [round(x, 1) for x in worker_rss],
            "standby_or_draining_rss_mb": [round(x, 1) for x in other_rss],
            "supervisor_exit_code": gw.stop(),
            "wall_seconds": round(time.monotonic() - m.began, 1),
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
    ok = passed(report)
    print(f"\nlogs and config: {workdir}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
