"""A subscriber that never reads, attached to a real worker while a publisher pushes
large payloads: it is disconnected at its bounded send buffer, and the worker's memory
stays flat (measured with psutil on the worker process), on both HTTP engines."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable

import psutil
import pytest
import redis

from tests.helpers import free_port, wait_until
from tests.integration.conftest import Gateway
from tests.stream_clients import Fleet
from tests.streams_support import ENGINES, metric

pytestmark = pytest.mark.integration

PAYLOAD = 128 * 1024
MESSAGES = 384  # 48 MiB through the worker
BUFFER = 1024 * 1024  # server.stream_send_buffer_bytes (the default)
#: The worker may grow by the slow stream's buffer, the transports' buffers and the
#: allocator's slack; an unbounded queue would hold all 48 MiB.
RSS_GROWTH_BOUND = 16 * 1024 * 1024


def sample(metrics_port: int, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return metric(text, name, **labels)


def slow_consumers(metrics_port: int) -> float:
    return sample(metrics_port, "redis_gateway_streams_closed_total", reason="slow_consumer")


def never_reading_subscriber(port: int, channel: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"POST /subscribe/{channel} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n"
        "accept: text/event-stream\r\n\r\n".encode()
    )
    return sock


@pytest.mark.parametrize("engine", ENGINES)
def test_a_never_reading_subscriber_is_cut_and_worker_rss_stays_flat(
    engine: str,
    gateway_factory: Callable[..., Gateway],
    clean_redis: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics_port = free_port()
    gw = gateway_factory(
        {
            "server": {"workers": 1, "http_engine": engine, "stream_send_buffer_bytes": BUFFER},
            "observability": {"metrics": {"enabled": True, "port": metrics_port}},
        }
    )
    (pid,) = gw.worker_pids()
    worker = psutil.Process(pid)
    fleet = Fleet(f"http://127.0.0.1:{gw.port}")
    try:
        (fast,) = fleet.add("sse", "flood", keep=False)
        wait_until(lambda: fast.connections == 1, what="the fast subscriber")

        def publish(n: int) -> None:
            """One payload, then wait until the fast subscriber has it (it keeps up)."""
            clean_redis.publish("flood", b"%d:" % n + b"x" * PAYLOAD)
            wait_until(lambda: fast.since_connect == n + 1, interval=0.001, what=f"message {n}")

        for n in range(16):  # warm-up: buffers and allocator at their working size
            publish(n)
        baseline = peak = worker.memory_info().rss
        slow = never_reading_subscriber(gw.port, "flood")
        wait_until(
            lambda: sample(metrics_port, "redis_gateway_streams_open") == 2,
            what="the never-reading subscriber's stream open",
        )
        cut_at = None
        for n in range(16, 16 + MESSAGES):
            publish(n)
            peak = max(peak, worker.memory_info().rss)
            if cut_at is None and n % 8 == 0 and slow_consumers(metrics_port) == 1:
                cut_at = n
        slow.close()
    finally:
        fleet.close()
    growth = peak - baseline
    with capsys.disabled():
        print(f"\n{engine}: worker RSS grew {growth / 2**20:.1f} MiB over {MESSAGES} x 128 KiB")
    assert cut_at is not None, "the never-reading subscriber was not disconnected"
    assert growth < RSS_GROWTH_BOUND, f"worker RSS grew {growth / 2**20:.1f} MiB"
    assert fast.unannounced == [] and fast.connections == 1
