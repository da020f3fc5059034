"""Throughput of the gateway against Webdis on the same Redis (issues 4 and 12).

Starts a private Redis, Webdis (2 threads) and gateways (``redis-gateway run``, 2
workers) on free ports of 127.0.0.1, checks every load answers correctly (and that
16 pipelined requests come back in order), then runs ``wrk`` (64 connections by
default) over the rows of ``benchmarks/throughput_targets.py`` in interleaved rounds:

* GET and SET through Webdis, the gateway's Webdis protocol and its Upstash protocol;
* HTTP/1.1 pipelining of depth 16; a pipeline of 100 commands; a 1 MB value;
* the Upstash GET with auth on (API key) and with rate limiting on, as a cost in %;

and then a memory soak (``--soak-requests``, 1,000,000 by default) on a fresh gateway,
sampling the RSS of the supervisor and of each worker. Prints req/s, p50/p99, errors,
CPU µs per request, MB/s and commands/s, the ratio to Webdis, the soak's curve and
its flat/not-flat verdict. Everything it starts is stopped at the end. Needs ``wrk``
and ``webdis`` on PATH (Debian: ``apt-get install webdis wrk``).

    .venv/bin/python benchmarks/throughput.py [--duration 10] [--repeat 3]
        [--engine uvicorn|native|both] [--rows basic,pipelining,...] [--quick]
        [--soak-requests 1000000] [--json out.json] [--profile-worker prof.txt]

``--engine both`` starts one set of gateways per ``server.http_engine`` and interleaves
them in the same rounds (the fair way to compare them on a noisy machine).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.throughput_checks import check_pipelined_order, order_check_keys  # noqa: E402
from benchmarks.throughput_procs import (  # noqa: E402
    connections_held,
    control_socket,
    cpu_seconds,
    start_gateway,
    start_webdis,
    stop,
    wait_ok,
    worker_pids,
)
from benchmarks.throughput_report import (  # noqa: E402
    document,
    print_rounds,
    print_rows,
    print_soak,
)
from benchmarks.throughput_soak import Soak, run_soak  # noqa: E402
from benchmarks.throughput_targets import (  # noqa: E402
    LARGE_VALUE,
    PIPELINE_DEPTH,
    RATE_LIMIT_SETS,
    VALUE,
    Target,
    auth_sets,
    cost_targets,
    gateway_targets,
    webdis_targets,
)
from benchmarks.throughput_wrk import Result, median_result, run_wrk  # noqa: E402
from supervisor.embedded_redis import EmbeddedRedis, free_port  # noqa: E402

#: --rows: which loads each group holds.
ROW_GROUPS = {
    "basic": ("GET", "SET"),
    "pipelining": ("GETx16",),
    "pipeline": ("PIPE100",),
    "large": ("GET1MB",),
    "auth": ("GET+auth",),
    "ratelimit": ("GET+ratelimit",),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--duration", type=int, default=None, help="seconds per wrk run (10; --quick: 2)")
    add("--connections", type=int, default=64)
    add("--threads", type=int, default=2, help="wrk threads")
    add("--workers", type=int, default=2, help="gateway workers")
    add("--repeat", type=int, default=None, help="rounds, median reported (3; --quick: 1)")
    add(
        "--engine",
        choices=("uvicorn", "native", "both"),
        help="server.http_engine (default: the config's default); both: one set of "
        "gateways per engine, in the same rounds",
    )
    add(
        "--rows",
        default=",".join(ROW_GROUPS),
        help=f"comma-separated groups among {', '.join(ROW_GROUPS)} (default: all)",
    )
    add("--soak-requests", type=int, default=None, help="0: no soak (1,000,000; --quick: 100,000)")
    add("--soak-samples", type=int, default=10, help="RSS samples over the soak")
    add("--quick", action="store_true", help="short runs: a smoke test of the whole benchmark")
    add("--json", metavar="FILE", help="also write every figure as JSON to FILE ('-': stdout)")
    add("--profile-worker", metavar="FILE", help="py-spy a worker during the first upstash GET")
    args = parser.parse_args()
    args.duration = args.duration or (2 if args.quick else 10)
    args.repeat = args.repeat or (1 if args.quick else 3)
    if args.soak_requests is None:
        args.soak_requests = 100_000 if args.quick else 1_000_000
    groups = [g.strip() for g in args.rows.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(ROW_GROUPS))
    if unknown:
        parser.error(f"--rows: unknown group(s) {unknown}; known: {', '.join(ROW_GROUPS)}")
    args.ops = {op for g in groups for op in ROW_GROUPS[g]}
    return args


def seed(redis_port: int) -> None:
    client = redis.Redis(port=redis_port)
    client.set("bench:key", VALUE)
    client.set("bench:big", LARGE_VALUE)
    client.mset(order_check_keys(PIPELINE_DEPTH))
    client.close()


def start_servers(
    args: argparse.Namespace,
    server: EmbeddedRedis,
    workdir: Path,
    owners: dict[str, subprocess.Popen[bytes]],
) -> list[Target]:
    """Webdis and every gateway the rows need (into ``owners``); the rows."""
    webdis_port = free_port()
    owners["webdis"] = start_webdis(server.port, webdis_port, workdir)
    targets = webdis_targets(f"http://127.0.0.1:{webdis_port}")
    engines: list[str | None] = ["uvicorn", "native"] if args.engine == "both" else [args.engine]
    api_key = secrets.token_urlsafe(24)
    for engine in engines:
        label = engine if engine is not None and args.engine == "both" else "gateway"
        variants: dict[str, dict[str, str]] = {label: {}}
        if "GET+auth" in args.ops:
            variants[f"{label} auth"] = auth_sets(api_key)
        if "GET+ratelimit" in args.ops:
            variants[f"{label} ratelimit"] = RATE_LIMIT_SETS
        bases = {}
        for key, sets in variants.items():
            port = free_port()
            owners[key] = start_gateway(server.url, port, args.workers, engine, sets, workdir)
            bases[key] = f"http://127.0.0.1:{port}"
        targets += gateway_targets(label, bases[label])
        targets += cost_targets(
            label, bases.get(f"{label} auth", ""), bases.get(f"{label} ratelimit", ""), api_key
        )
    wait_ok(targets[0].base + "/PING", "webdis")
    return [t for t in targets if t.op in args.ops]


def preflight(targets: list[Target]) -> dict[str, str]:
    """Correctness before speed: every load answers 200 with the value it asked for,
    and 16 pipelined requests for distinct keys come back in order from every gateway
    (exit if not). Webdis's order is reported, not required: per server, what was seen."""
    for base in dict.fromkeys(t.base for t in targets if t.server != "webdis"):
        wait_ok(f"{base}/readyz", f"gateway at {base}")
    for t in targets:
        reply = httpx.request(t.method, t.url, content=t.body, headers=t.headers, timeout=10)
        assert reply.status_code == 200, (t.name, reply.status_code, reply.text[:200])
        wanted = LARGE_VALUE if t.op == "GET1MB" else "OK" if t.op == "SET" else VALUE
        assert reply.text.count(wanted) == (t.commands if t.op == "PIPE100" else 1), t.name
    keys = order_check_keys(PIPELINE_DEPTH)
    order = {}
    for t in targets:
        if t.op != "GETx16":
            continue
        prefix = t.path.rsplit("/", 1)[0]
        port = int(t.base.rsplit(":", 1)[1])
        try:
            check_pipelined_order(port, [f"{prefix}/{k}" for k in keys], list(keys.values()))
            order[t.name] = "in order"
        except AssertionError as exc:
            if t.server != "webdis":
                raise SystemExit(f"{t.name}: {exc}") from None
            order[t.name] = f"NOT in order ({exc})"
        print(f"pipelined order, {PIPELINE_DEPTH} GETs of distinct keys, {t.name}: {order[t.name]}")
    return order


def pids_of(server: str, owners: dict[str, subprocess.Popen[bytes]]) -> list[int]:
    proc = owners[server]
    return [proc.pid] if server == "webdis" else worker_pids(proc.pid)


def measure_one(
    target: Target,
    script: str | None,
    args: argparse.Namespace,
    owners: dict[str, subprocess.Popen[bytes]],
) -> Result:
    pids = pids_of(target.server, owners)
    connections = target.connections or args.connections
    held: list[list[int]] = []
    port = urlsplit(target.url).port
    sampler = None
    if target.server != "webdis" and port is not None:  # mid-run: wrk's connections
        sampler = threading.Timer(
            args.duration / 2, lambda: held.append(connections_held(pids, port))
        )
        sampler.start()
    before = cpu_seconds(pids)
    result = run_wrk(target.name, target.url, args.duration, connections, args.threads, script)
    if result.requests:
        result.cpu_us = (cpu_seconds(pids) - before) / result.requests * 1e6
    if sampler is not None:
        sampler.join()
        # (warm standbys hold the listening socket too, and no connection: the
        # ``workers`` busiest are the workers)
        result.split = "/".join(map(str, held[0][: args.workers])) if held else ""
    return result


def profiler_for(args: argparse.Namespace, pid: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *("py-spy", "record", "-p", str(pid), "-d", str(args.duration)),
            *("-f", "raw", "-o", args.profile_worker, "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(
    targets: list[Target],
    args: argparse.Namespace,
    owners: dict[str, subprocess.Popen[bytes]],
    workdir: Path,
) -> dict[str, list[Result]]:
    """Warm up, then ``--repeat`` rounds interleaving the rows (a burst of other load
    on the machine hits every row alike)."""
    scripts = {t.name: t.write_script(workdir) for t in targets}
    warm = 1 if args.quick else 2
    for t in {t.server: t for t in targets}.values():  # one load per server
        run_wrk("warmup", t.url, warm, args.connections, args.threads, scripts[t.name])
    profiled = next((t.name for t in targets if t.name.endswith("upstash GET")), None)
    runs: dict[str, list[Result]] = {t.name: [] for t in targets}
    for round_no in range(args.repeat):
        for t in targets:
            profiler = None
            if args.profile_worker and round_no == 0 and t.name == profiled:
                profiler = profiler_for(args, pids_of(t.server, owners)[0])
            runs[t.name].append(measure_one(t, scripts[t.name], args, owners))
            if profiler is not None:
                profiler.wait(args.duration + 30)
    return runs


def soak_phase(args: argparse.Namespace, server: EmbeddedRedis, workdir: Path) -> Soak:
    """The memory soak on a fresh gateway (the rows' 1 MB values do not linger in it)."""
    engine = args.engine if args.engine in ("uvicorn", "native") else None
    port = free_port()
    gateway = start_gateway(server.url, port, args.workers, engine, rundir=workdir)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ok(f"{base}/readyz", "soak gateway")
        return run_soak(
            base,
            gateway.pid,
            control_socket(workdir, port),
            workdir,
            args.soak_requests,
            args.soak_samples,
            args.connections,
            args.threads,
        )
    finally:
        stop(gateway)


def write_json(path: str, doc: dict[str, Any]) -> None:
    def clean(value: Any) -> Any:  # JSON has no NaN: null instead
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    text = json.dumps(clean(doc), indent=2, allow_nan=False)
    if path == "-":
        print(text)
    else:
        Path(path).write_text(text + "\n")


def missing_tools(args: argparse.Namespace) -> list[str]:
    tools = ("wrk", "webdis", "py-spy") if args.profile_worker else ("wrk", "webdis")
    return [tool for tool in tools if shutil.which(tool) is None]


def main() -> int:
    args = parse_args()
    missing = missing_tools(args)
    if missing:
        print(
            f"missing: {', '.join(missing)} -- install with: apt-get install -y webdis wrk"
            " (py-spy: pip install py-spy)",
            file=sys.stderr,
        )
        return 2
    load_before = Path("/proc/loadavg").read_text().strip()
    print(f"load average before: {load_before}")
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    server = EmbeddedRedis()
    server.start()
    owners: dict[str, subprocess.Popen[bytes]] = {}
    try:
        seed(server.port)
        targets = start_servers(args, server, workdir, owners)
        order = preflight(targets)
        runs = measure(targets, args, owners, workdir)
        for proc in owners.values():  # the soak's gateway runs alone
            stop(proc)
        soak = soak_phase(args, server, workdir) if args.soak_requests > 0 else None
    finally:
        for proc in owners.values():
            stop(proc)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    results = {name: median_result(rs) for name, rs in runs.items()}
    load_after = Path("/proc/loadavg").read_text().strip()
    header = (
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s (1 MB rows: "
        f"-c{min(args.connections, 8)}), gateway workers={args.workers}, "
        f"engine={args.engine or 'default'}, cpus={os.cpu_count()}, median of {args.repeat} "
        f"rounds; load average before {load_before}, after {load_after}"
    )
    print_rounds(targets, runs)
    print_rows(targets, results, header)
    if soak is not None:
        engine = args.engine if args.engine in ("uvicorn", "native") else "default"
        print_soak(soak, f"memory soak: {args.soak_requests} requests, engine {engine}, RSS MB")
    for name, seen in order.items():
        print(f"pipelined replies, {name}: {seen[:60]}")
    print(f"\ntook {time.monotonic() - started:.0f} s")
    if args.json:
        meta: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k != "ops"}}
        meta.update(load_before=load_before, load_after=load_after, header=header)
        meta["pipelined_order"] = order
        write_json(args.json, document(meta, targets, runs, results, soak))
    return 0


if __name__ == "__main__":
    sys.exit(main())
