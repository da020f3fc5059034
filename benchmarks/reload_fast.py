"""`reload_under_load.py --fast`: the race that issue 14 found, run on purpose.

60 mixed reloads 0.3 s apart while 8 client processes load the gateway; the file
watcher is on and every config is written with `cp` (which truncates the file, then
writes it: for a moment every reader sees an empty or half-written file). One in five
steps also sends SIGHUP right after the copy, so watcher and explicit reloads coalesce.
A run passes when no request failed, no write was lost, no keep-alive request died in
an idle-close race, the supervisor never committed a config other than one of the
complete files it was given, and it ends running the last file.

    .venv/bin/python benchmarks/reload_under_load.py --fast --runs 20
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks.load_clients import KA_KEY, NEW_KEY, keepalive_client, new_connection_client
from supervisor.config import ConfigError, ConfigInputs, load_config
from supervisor.embedded_redis import EmbeddedRedis, free_port

STEPS = 60
INTERVAL = 0.3
NEW_CLIENTS, KEEPALIVE_CLIENTS = 6, 2  # 8 client processes


def _variants(
    base: dict[str, dict[str, Any]], workers: int, closed_port: int
) -> list[tuple[str, Any]]:
    """(kind, config) of one cycle: valid changes, invalid files, a readiness failure."""

    def changed(**sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
        cfg = {k: dict(v) for k, v in base.items()}
        for section, values in sections.items():
            cfg[section.replace("__", ".")].update(values)
        return cfg

    fewer = max(1, workers - 1)
    return [
        ("valid", changed(server={"workers": fewer})),
        ("valid", changed(server={"request_timeout_seconds": 20})),
        ("invalid", changed(server={"workers": -1})),
        ("valid", changed(server={"workers": workers})),
        # (Not the log level: a commit must stay visible in the INFO log, which is how
        # the run checks every committed hash.)
        ("valid", changed(server={"max_body_bytes": 2_000_000})),
        ("invalid", "[server\nport = \n"),
        ("readiness", changed(redis={"url": f"redis://127.0.0.1:{closed_port}"})),
        ("valid", changed(server={"keepalive_timeout_seconds": 3})),
        ("valid", changed(server={"max_arguments": 5000})),
        ("valid", base),
    ]


def _hash_of(text: str, workdir: Path) -> str | None:
    """The hash the supervisor computes for this file (None if it is invalid)."""
    probe = workdir / "probe.toml"
    probe.write_text(text)
    try:
        return load_config(ConfigInputs(config_path=probe, env=dict(os.environ))).hash
    except ConfigError:
        return None


def _committed_hashes(log_path: Path) -> list[str]:
    hashes = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "reload.committed":
            hashes.append(str(event.get("hash")))
    return hashes


def one_run(
    args: argparse.Namespace, gateway_class: Any, render: Any, wait_for: Any
) -> dict[str, Any]:
    """One fast run; returns its row of figures."""
    workdir = Path(tempfile.mkdtemp(prefix="redis-gateway-fast-"))
    store = EmbeddedRedis()
    store.start()
    ctx = mp.get_context("fork")
    stop, out = ctx.Event(), ctx.Queue()
    clients: list[Any] = []
    gateway = None
    try:
        db = redis.Redis.from_url(store.url)
        db.flushall()
        gateway = gateway_class(workdir, store.url, args.workers, args.worker_loop, watch=True)
        gw = gateway
        wait_for(lambda: gw.serving(args.workers), 60, "the first generation")
        cycle = _variants(gw.base, args.workers, free_port())
        texts = [(kind, cfg if isinstance(cfg, str) else render(cfg)) for kind, cfg in cycle]
        valid_hashes = {h for _, text in texts if (h := _hash_of(text, workdir))}
        sources = []
        for i, (_, text) in enumerate(texts):
            src = workdir / f"variant-{i}.toml"
            src.write_text(text)
            sources.append(src)

        clients = [
            ctx.Process(target=new_connection_client, args=(gw.port, stop, out))
            for _ in range(NEW_CLIENTS)
        ]
        clients += [
            ctx.Process(target=keepalive_client, args=(gw.port, stop, out))
            for _ in range(KEEPALIVE_CLIENTS)
        ]
        for proc in clients:
            proc.start()
        time.sleep(1.0)
        began = time.monotonic()
        for step in range(STEPS):
            subprocess.run(
                ["cp", str(sources[step % len(sources)]), str(gw.config_path)], check=True
            )
            if step % 5 == 4:
                gw.proc.send_signal(signal.SIGHUP)
            time.sleep(max(0.0, began + (step + 1) * INTERVAL - time.monotonic()))
        final_hash = _hash_of(texts[(STEPS - 1) % len(texts)][1], workdir)

        def settled() -> bool:
            st = gw.status()
            return not st["reload_in_progress"] and st["hash"] == final_hash

        converged = True
        try:
            wait_for(settled, 60, "the last file applied")
        except RuntimeError:
            converged = False
        time.sleep(0.5)
        stop.set()
        results = [out.get(timeout=30) for _ in clients]
        for proc in clients:
            proc.join(timeout=10)
        status = gw.status()
        committed = _committed_hashes(workdir / "supervisor.log")
        new = [r for r in results if r["kind"] == "new"]
        ka = [r for r in results if r["kind"] == "keepalive"]
        new_ok = sum(r["ok"] for r in new)
        counter = int(db.get(NEW_KEY) or 0)
        ka_ok = sum(r.get("incr_ok", 0) for r in ka)
        return {
            "requests_ok": new_ok + ka_ok + sum(r.get("get_ok", 0) for r in ka),
            "failed": sum(r["failed"] for r in new) + sum(r.get("failed", 0) for r in ka),
            "keepalive_races": sum(len(r["race_at"]) for r in ka),
            "lost_writes": abs(counter - new_ok) + abs(int(db.get(KA_KEY) or 0) - ka_ok),
            "reloads": dict(sorted(status["reloads"].items())),
            "commits": len(committed),
            "partial_commits": sum(1 for h in committed if h not in valid_hashes),
            "converged": converged,
            "supervisor_exit": gw.stop(),
            "errors": {k: v for r in results for k, v in r["errors"].items()},
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


def passed(row: dict[str, Any]) -> bool:
    return bool(
        row["failed"] == 0
        and row["keepalive_races"] == 0
        and row["lost_writes"] == 0
        and row["partial_commits"] == 0
        and row["converged"]
        and row["supervisor_exit"] == 0
    )


def run_fast(args: argparse.Namespace, gateway_class: Any, render: Any, wait_for: Any) -> int:
    """`--fast`: ``args.runs`` consecutive runs, one table."""
    rows = []
    for n in range(args.runs):
        row = one_run(args, gateway_class, render, wait_for)
        rows.append(row)
        print(f"run {n + 1}: {'PASS' if passed(row) else 'FAIL'} {json.dumps(row)}", flush=True)
    print()
    print(
        "| run | requests ok | failed | keep-alive races | lost writes | commits "
        "| partial commits | reloads by result | converged |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n, row in enumerate(rows, 1):
        results = ", ".join(f"{k} {v}" for k, v in row["reloads"].items())
        print(
            f"| {n} | {row['requests_ok']:,} | {row['failed']} | {row['keepalive_races']} "
            f"| {row['lost_writes']} | {row['commits']} | {row['partial_commits']} "
            f"| {results} | {'yes' if row['converged'] else 'NO'} |"
        )
    ok = all(passed(r) for r in rows)
    print(
        f"\n{sum(map(passed, rows))}/{len(rows)} runs passed; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end"
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1
