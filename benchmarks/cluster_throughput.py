"""GET/SET throughput of the gateway in cluster mode next to standalone, in one run
(issue 11): the same machine, the same load, rounds interleaved.

Starts a standalone Redis and a Redis Cluster (3 primaries, ``--replicas`` each: 0 by
default, so both setups do the same Redis work on this machine), one ``redis-gateway
run`` for each (same workers), fills 1,000 keys in each, then runs ``wrk`` (64
connections) against:

* ``standalone GET|SET``: ``/get/bench:<i>`` and ``/set/bench:<i>/<value>`` on the
  standalone gateway;
* ``cluster GET|SET``: the same paths on the cluster gateway (the keys spread over the
  3 primaries: every request is routed by slot).

``i`` cycles over 1,000 keys (a wrk Lua script). Prints req/s, p50/p99, errors and the
gateway workers' CPU time per request (less sensitive to other load than req/s).

    .venv/bin/python benchmarks/cluster_throughput.py [--duration 10] [--repeat 3]
        [--connections 64] [--workers 2] [--replicas 0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.redis_topologies import LocalCluster  # noqa: E402
from benchmarks.throughput_procs import (  # noqa: E402
    cpu_seconds,
    start_gateway,
    stop,
    wait_ok,
    worker_pids,
)
from benchmarks.throughput_wrk import Result, median_result, run_wrk  # noqa: E402
from supervisor.embedded_redis import EmbeddedRedis, free_port  # noqa: E402

KEYS = 1000
VALUE = "v" * 32
SCRIPT = """counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", string.format("{path}", counter % {keys}))
end
"""


def write_scripts(workdir: Path) -> dict[str, str]:
    scripts = {}
    for op, path in (("GET", "/get/bench:%d"), ("SET", f"/set/bench:%d/{VALUE}")):
        file = workdir / f"{op.lower()}.lua"
        file.write_text(SCRIPT.replace("{path}", path).replace("{keys}", str(KEYS)))
        scripts[op] = str(file)
    return scripts


def fill(base: str) -> None:
    commands = [["SET", f"bench:{i}", VALUE] for i in range(KEYS)]
    reply = httpx.post(f"{base}/pipeline", json=commands, timeout=30)
    assert reply.status_code == 200 and all(r == {"result": "OK"} for r in reply.json())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gateway workers (each)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (the median is shown)")
    parser.add_argument("--replicas", type=int, default=0, help="replicas per primary")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("missing: wrk -- install with: apt-get install -y wrk", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="gateway-cluster-bench-"))
    standalone = EmbeddedRedis()
    standalone.start()
    cluster = LocalCluster(replicas=args.replicas)
    gateways = {}
    try:
        nodes = "[" + ",".join(f'"{n}"' for n in cluster.seeds) + "]"
        setups = {
            "standalone": (standalone.url, {}),
            "cluster": (None, {"redis.mode": "cluster", "redis.nodes": nodes}),
        }
        for label, (url, sets) in setups.items():
            port = free_port()
            gateways[label] = (
                start_gateway(url, port, args.workers, redis_sets=sets),
                f"http://127.0.0.1:{port}",
            )
        for label, (_, base) in gateways.items():
            wait_ok(f"{base}/readyz", f"{label} gateway")
            fill(base)
        counts = [redis.Redis(port=p).dbsize() for p in cluster.primary_ports()]
        scripts = write_scripts(workdir)
        targets = [(f"{label} {op}", label, op) for label in gateways for op in ("GET", "SET")]
        for _, label, op in targets:  # warm up every gateway and path
            run_wrk("warmup", gateways[label][1], 1, args.connections, args.threads, scripts[op])
        runs: dict[str, list[Result]] = {name: [] for name, _, _ in targets}
        for _ in range(args.repeat):
            for name, label, op in targets:
                proc, base = gateways[label]
                pids = worker_pids(proc.pid)
                before = cpu_seconds(pids)
                result = run_wrk(
                    name, base, args.duration, args.connections, args.threads, scripts[op]
                )
                if result.requests:
                    result.cpu_us = (cpu_seconds(pids) - before) / result.requests * 1e6
                runs[name].append(result)
        report(runs, args, counts)
        return 0
    finally:
        for proc, _ in gateways.values():
            stop(proc)
        cluster.stop()
        standalone.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(runs: dict[str, list[Result]], args: argparse.Namespace, counts: list[int]) -> None:
    print("\nreq/s per round:")
    for name, results in runs.items():
        print(f"  {name:<16}" + " ".join(f"{r.rps:>8.0f}" for r in results))
    print(
        f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s over {KEYS} keys, "
        f"gateway workers={args.workers} each, cluster: 3 primaries x {args.replicas} "
        f"replicas (keys per primary {counts}), cpus={os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.2f}, median of {args.repeat} rounds"
    )
    print(
        f"{'target':<18}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non2xx':>8}{'errors':>8}"
        f"{'vs standalone':>15}{'CPU us/req':>12}"
    )
    medians = {name: median_result(results) for name, results in runs.items()}
    for name, r in medians.items():
        ref = medians[f"standalone {name.split()[-1]}"]
        print(
            f"{name:<18}{r.rps:>10.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.non_2xx:>8}"
            f"{r.errors:>8}{r.rps / ref.rps:>14.2f}x{r.cpu_us:>12.1f}"
        )


if __name__ == "__main__":
    sys.exit(main())
