"""Throughput of the gateway against Webdis on the same Redis (issue 4, section 5).

Starts a private Redis, the gateway (``redis-gateway run`` with 2 workers) and Webdis
on free ports of 127.0.0.1, then runs ``wrk`` (64 connections by default) for GET and
SET through:

* Webdis itself                      (the reference)
* the gateway's Webdis protocol      (``/webdis/GET/k``)
* the gateway's Upstash protocol     (``/get/k``)

and prints requests/s, p50/p99 latency, non-2xx counts and the ratio to Webdis.
Everything it starts is stopped at the end. Needs ``wrk`` and ``webdis`` on PATH
(Debian: ``apt-get install webdis wrk``).

    .venv/bin/python benchmarks/throughput.py [--duration 10] [--connections 64]
        [--workers 2] [--repeat 3] [--profile-worker prof.txt]
        [--engine uvicorn|native|both]

``--engine both`` starts two gateways, one per ``server.http_engine``, and interleaves
them in the same rounds (the fair way to compare them on a noisy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from supervisor.embedded_redis import EmbeddedRedis, free_port  # noqa: E402

VALUE = "v" * 32


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    requests: int = 0
    cpu_us: float = float("nan")  # server CPU time per request (all its processes)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` (Linux /proc)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_wrk(
    name: str, url: str, duration: int, connections: int, threads: int, script: str | None = None
) -> Result:
    """One wrk run (``script``: a wrk Lua script building the requests)."""
    extra = ["-s", script] if script else []
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", *extra, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"\s50%\s+(\S+)", out)
    p99 = re.search(r"\s99%\s+(\S+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    done = re.search(r"(\d+) requests in", out)
    return Result(
        name,
        rps,
        _ms(p50.group(1)) if p50 else float("nan"),
        _ms(p99.group(1)) if p99 else float("nan"),
        int(non2xx.group(1)) if non2xx else 0,
        sum(int(g) for g in errors.groups()) if errors else 0,
        int(done.group(1)) if done else 0,
    )


def median_result(results: list[Result]) -> Result:
    """The round with the median req/s (its latencies and CPU come with it)."""
    ordered = sorted(results, key=lambda r: r.rps)
    return ordered[len(ordered) // 2]


def wait_ok(url: str, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer 200 at {url} within {timeout}s")


def start_webdis(redis_port: int, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    config = {
        "redis_host": "127.0.0.1",
        "redis_port": redis_port,
        "redis_auth": None,
        "http_host": "127.0.0.1",
        "http_port": port,
        "threads": 2,
        "pool_size": 20,
        "daemonize": False,
        "database": 0,
        "verbosity": 0,
        "logfile": str(workdir / "webdis.log"),
    }
    path = workdir / "webdis.json"
    path.write_text(json.dumps(config))
    return subprocess.Popen(
        ["webdis", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def start_gateway(
    redis_url: str | None,
    port: int,
    workers: int,
    engine: str | None = None,
    redis_sets: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``redis-gateway run`` on ``port``; ``redis_sets``: other ``redis.*`` settings
    (a cluster's ``redis.mode`` and ``redis.nodes``) instead of ``redis.url``."""
    exe = ROOT / ".venv" / "bin" / "redis-gateway"
    sets: dict[str, object] = {
        "server.host": "127.0.0.1",
        "server.port": port,
        "server.workers": workers,
        "observability.metrics.port": free_port(),
        "observability.logging.level": "WARNING",
        "supervisor.watch_config": "false",
    }
    if redis_url is not None:
        sets["redis.url"] = redis_url
    sets.update(redis_sets or {})
    if engine is not None:
        sets["server.http_engine"] = engine
    args = [str(exe if exe.exists() else "redis-gateway"), "run"]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    return subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def worker_pids(supervisor_pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(supervisor_pid)],
        check=False,
        capture_output=True,
        text=True,
    ).stdout
    return [int(p) for p in out.split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gateway workers")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds over all targets (the median round is reported)",
    )
    parser.add_argument(
        "--engine",
        choices=("uvicorn", "native", "both"),
        help="server.http_engine of the gateway (default: the config's "
        "default); both: one gateway per engine, in the same rounds",
    )
    parser.add_argument(
        "--profile-worker",
        metavar="FILE",
        help="py-spy a worker during the Upstash GET run, write to FILE",
    )
    args = parser.parse_args()

    tools = ("wrk", "webdis", "py-spy") if args.profile_worker else ("wrk", "webdis")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        print(
            f"missing: {', '.join(missing)} -- install with: apt-get install -y webdis wrk"
            " (py-spy: pip install py-spy)",
            file=sys.stderr,
        )
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    server = EmbeddedRedis()
    server.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        client = redis.Redis(port=server.port)
        client.set("bench:key", VALUE)
        client.close()
        webdis_port = free_port()
        procs.append(start_webdis(server.port, webdis_port, workdir))
        webdis = f"http://127.0.0.1:{webdis_port}"
        wait_ok(f"{webdis}/PING", "webdis")
        targets = [
            ("webdis GET", f"{webdis}/GET/bench:key"),
            ("webdis SET", f"{webdis}/SET/bench:set/{VALUE}"),
        ]
        engines: list[str | None] = (
            ["uvicorn", "native"] if args.engine == "both" else [args.engine]
        )
        owner: dict[str, subprocess.Popen[bytes]] = {}  # target -> its gateway
        for engine in engines:
            gateway_port = free_port()
            gateway = start_gateway(server.url, gateway_port, args.workers, engine)
            procs.append(gateway)
            gw = f"http://127.0.0.1:{gateway_port}"
            wait_ok(f"{gw}/readyz", "gateway")
            label = "gateway" if args.engine != "both" else f"{engine}"
            for name, url in [
                (f"{label} webdis GET", f"{gw}/webdis/GET/bench:key"),
                (f"{label} webdis SET", f"{gw}/webdis/SET/bench:set/{VALUE}"),
                (f"{label} upstash GET", f"{gw}/get/bench:key"),
                (f"{label} upstash SET", f"{gw}/set/bench:set/{VALUE}"),
            ]:
                targets.append((name, url))
                owner[name] = gateway
        for _, url in targets:  # correctness before speed
            response = httpx.get(url, timeout=5)
            assert response.status_code == 200, (url, response.status_code, response.text)
        # Warm up (connections, caches, uvloop) before measuring.
        for name, url in targets:
            if name.endswith("upstash GET"):  # one per gateway
                run_wrk("warmup", url, 2, args.connections, args.threads)
        profiler: subprocess.Popen[bytes] | None = None
        runs: dict[str, list[Result]] = {name: [] for name, _ in targets}
        # Rounds interleave the targets, so a burst of other load on the machine
        # hits every target alike; the median of the rounds is reported.
        for round_no in range(args.repeat):
            for name, url in targets:
                if args.profile_worker and round_no == 0 and name == targets[4][0]:
                    pid = worker_pids(owner[name].pid)[0]
                    profiler = subprocess.Popen(
                        [
                            "py-spy",
                            "record",
                            "-p",
                            str(pid),
                            "-d",
                            str(args.duration),
                            "-f",
                            "raw",
                            "-o",
                            args.profile_worker,
                            "--nonblocking",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                pids = [procs[0].pid] if name.startswith("webdis") else worker_pids(owner[name].pid)
                before = cpu_seconds(pids)
                result = run_wrk(name, url, args.duration, args.connections, args.threads)
                if result.requests:
                    result.cpu_us = (cpu_seconds(pids) - before) / result.requests * 1e6
                runs[name].append(result)
                if profiler is not None:
                    profiler.wait(30)
                    profiler = None
        results = [median_result(runs[name]) for name, _ in targets]
        print("\nreq/s per round:")
        for name, _ in targets:
            print(f"  {name:<22}" + " ".join(f"{r.rps:>8.0f}" for r in runs[name]))
        by_name = {r.name: r for r in results}
        print(
            f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
            f"gateway workers={args.workers}, engine={args.engine or 'default'}, "
            f"cpus={os.cpu_count()}, "
            f"median of {args.repeat} rounds"
        )
        print(
            f"{'target':<22}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non2xx':>8}"
            f"{'errors':>8}{'vs webdis':>11}{'CPU us/req':>12}"
        )
        for r in results:
            op = r.name.split()[-1]
            ref = by_name[f"webdis {op}"].rps
            print(
                f"{r.name:<22}{r.rps:>10.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
                f"{r.non_2xx:>8}{r.errors:>8}{r.rps / ref:>10.2f}x{r.cpu_us:>12.1f}"
            )
        print(
            "CPU us/req: server CPU time (webdis process, or all gateway workers) per "
            "request served; less sensitive to other load on the machine than req/s."
        )
        return 0
    finally:
        for proc in procs:
            stop(proc)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
