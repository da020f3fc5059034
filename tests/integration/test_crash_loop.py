"""Zero workers: the supervisor answers a fast 503 and service returns within 1 s of the
cause going away (issue 8, item 7). A real supervisor; a Redis of the test's own that
goes away after the first generation booted, so that every replacement fails at boot."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

from supervisor.embedded_redis import EmbeddedRedis
from tests.helpers import wait_until
from tests.integration.conftest import Gateway, http_get


class Prober:
    """GETs on new connections, back to back, in a thread; remembers each latency."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.samples: list[tuple[float, float, int]] = []  # (start, latency, status)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                status, _ = http_get(self.port, "/readyz", timeout=5.0)
            except OSError:
                status = 0
            self.samples.append((start, time.monotonic() - start, status))
            time.sleep(0.02)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_crash_loop_gets_fast_503s_and_service_returns_within_1s(
    gateway_factory: Callable[..., Gateway],
) -> None:
    redis = EmbeddedRedis()
    redis.start()
    revived: EmbeddedRedis | None = None
    try:
        gw = gateway_factory(
            {"redis": {"url": redis.url}, "supervisor": {"restart_backoff_max_seconds": 30.0}}
        )
        assert gw.get("/readyz")[0] == 200
        with Prober(gw.port) as prober:
            redis.stop()
            for pid in gw.worker_pids():
                os.kill(pid, signal.SIGKILL)  # every replacement now fails at boot
            _, body = wait_until(
                lambda: (
                    (r := gw.get("/readyz", timeout=5.0))[0] == 503
                    and "no worker is ready to serve" in str(r[1])
                    # First the kill is the reason, then the replacements' boot error.
                    and "Redis" in str(r[1])
                    and r
                ),
                timeout=10,
                what="the supervisor's 503 with the reason the workers gave",
            )
            assert body["error"].startswith("no worker is ready to serve"), body
            outage_503 = time.monotonic()
            # Four rounds of crash loop: the plain backoff would wait 8 s before the next.
            wait_until(lambda: '"consecutive_crashes": 4' in gw.logs(), what="4 crash rounds")
            revived = EmbeddedRedis(port=redis.port)
            revived.start()  # returns once it answers PING: the cause is gone
            cause_gone = time.monotonic()
            wait_until(lambda: gw.get("/readyz")[0] == 200, timeout=30, what="service back")
            recovery = time.monotonic() - cause_gone
        during = [s for s in prober.samples if outage_503 <= s[0] < cause_gone]
        fast = [latency for _, latency, status in during if status == 503]
        worst = max(latency for _, latency, _ in prober.samples)
        print(
            f"\ncrash loop: {len(fast)} x 503, latency max {max(fast) * 1000:.1f} ms, "
            f"median {sorted(fast)[len(fast) // 2] * 1000:.1f} ms; longest wait of any "
            f"request {worst:.2f} s; service back {recovery:.2f} s after Redis"
        )
        assert len(fast) >= 10 and len(fast) == len(during), during
        assert max(fast) < 0.25
        assert worst < 2.0, "a client hung"
        assert recovery <= 1.0
        assert "supervisor.answering_503" in gw.logs()
    finally:
        for server in (redis, revived):
            if server is not None:
                server.stop()
