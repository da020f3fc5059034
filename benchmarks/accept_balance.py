"""How the connections of clients connecting together spread over the workers.

The workers share the supervisor's listening socket (one accept queue, no
SO_REUSEPORT: docs/architecture.md), and libuv (uvloop) accepts every pending
connection in one go: a burst of keep-alive clients (a load balancer's pool, wrk's 64
connections) may mostly land on the worker that woke first, which then serves them on
one core while the others idle. This starts a private Redis and ``redis-gateway run``
(``--workers``, 2 by default), then ``--trials`` times opens ``--connections`` (64)
connections at once (all SYNs together), makes one request on each, and counts which
worker holds each (psutil); it prints every split and the worst. ``--compare`` does
the same on a second gateway whose workers get ``UV_TCP_SINGLE_ACCEPT=1`` (libuv then
yields after each accept; the supervisor passes its environment on to the workers).

    .venv/bin/python benchmarks/accept_balance.py [--trials 20] [--connections 64]
        [--workers 2] [--compare]
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.throughput_procs import start_gateway, stop, wait_ok  # noqa: E402
from supervisor.embedded_redis import EmbeddedRedis, free_port  # noqa: E402

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def serving_workers(supervisor: int, port: int, expected: int) -> list[psutil.Process]:
    """The workers listening on ``port`` (not a warm standby), once all ``expected`` are."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = []
        for child in psutil.Process(supervisor).children():
            try:
                conns = child.net_connections("tcp")
            except psutil.NoSuchProcess:
                continue
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns):
                workers.append(child)
        if len(workers) == expected:
            return workers
        time.sleep(0.1)
    raise SystemExit(f"{expected} workers did not listen on port {port} within 30 s")


def one_trial(port: int, count: int, workers: list[psutil.Process]) -> list[int]:
    """Connections held by each worker after ``count`` clients connected at once."""
    socks = [socket.socket() for _ in range(count)]
    for sock in socks:  # all SYNs at once, as a client pool connecting together
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
    for sock in socks:
        select.select([], [sock], [], 5)
        sock.setblocking(True)
        sock.settimeout(5)
    try:
        for sock in socks:
            sock.sendall(REQUEST)
        for sock in socks:
            if not sock.recv(65536).startswith(b"HTTP/1.1 200 "):
                raise SystemExit("a request was not answered 200")
        held: Counter[int] = Counter()
        for worker in workers:
            for conn in worker.net_connections("tcp"):
                if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == port:
                    held[worker.pid] += 1
        return sorted((held[w.pid] for w in workers), reverse=True)
    finally:
        for sock in socks:
            sock.close()


def run(label: str, single_accept: str, args: argparse.Namespace, redis_url: str) -> None:
    port = free_port()
    os.environ["UV_TCP_SINGLE_ACCEPT"] = single_accept  # the supervisor passes it on
    rundir = Path(tempfile.mkdtemp(prefix="rg-accept-"))
    gateway = start_gateway(redis_url, port, args.workers, rundir=rundir)
    try:
        wait_ok(f"http://127.0.0.1:{port}/readyz", "the gateway")
        workers = serving_workers(gateway.pid, port, args.workers)
        splits = []
        for _ in range(args.trials):
            splits.append(one_trial(port, args.connections, workers))
            time.sleep(0.2)  # the closed connections leave the workers
        worst = max(splits, key=lambda s: s[0] - s[-1])
        fair = args.connections / args.workers
        print(f"{label} (UV_TCP_SINGLE_ACCEPT={single_accept}), {args.trials} bursts:")
        print("  splits: " + "  ".join("/".join(map(str, s)) for s in splits))
        within = sum(1 for s in splits if s[0] <= 1.25 * fair)
        print(
            f"  worst {'/'.join(map(str, worst))}; busiest worker within 25 % of a fair"
            f" share ({fair:g}) in {within} of {args.trials}"
        )
    finally:
        stop(gateway)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compare", action="store_true", help="also without single accept")
    args = parser.parse_args()
    redis = EmbeddedRedis()
    redis.start()
    try:
        run("libuv's default", os.environ.get("UV_TCP_SINGLE_ACCEPT", "0"), args, redis.url)
        if args.compare:
            run("single accept", "1", args, redis.url)
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
