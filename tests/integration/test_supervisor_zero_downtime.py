"""Zero downtime, short version of benchmarks/reload_under_load.py.

Load runs while the gateway goes through valid, invalid and readiness-failing
reloads; every request INCRs one counter, so lost or doubled writes show up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.helpers import free_port, wait_until
from tests.integration.conftest import Gateway, KeepAliveClient, http_get

pytestmark = pytest.mark.integration


class Load:
    """Threads sending `/incr/counter` until stopped, counting every outcome."""

    def __init__(self, port: int, new_connection_threads: int = 2) -> None:
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok_new = 0
        self.failed_new: list[str] = []
        self.ok_keepalive = 0
        self.failed_keepalive: list[str] = []
        self.keepalive = KeepAliveClient(port)
        self.threads = [
            threading.Thread(target=self._new_connections, daemon=True)
            for _ in range(new_connection_threads)
        ]
        self.threads.append(threading.Thread(target=self._keep_alive, daemon=True))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)
        self.keepalive.close()

    def _record(self, ok: bool, keepalive: bool, error: str = "") -> None:
        with self.lock:
            if keepalive:
                if ok:
                    self.ok_keepalive += 1
                else:
                    self.failed_keepalive.append(error)
            elif ok:
                self.ok_new += 1
            else:
                self.failed_new.append(error)

    def _new_connections(self) -> None:
        while not self.stop.is_set():
            try:
                status, body = http_get(self.port, "/incr/counter")
                ok = status == 200 and isinstance(body, dict) and "result" in body
                self._record(ok, False, "" if ok else f"{status} {body}")
            except Exception as exc:
                self._record(False, False, repr(exc))

    def _keep_alive(self) -> None:
        while not self.stop.is_set():
            try:
                status, _ = self.keepalive.get("/incr/counter")
                self._record(status == 200, True, str(status))
            except Exception as exc:
                self._record(False, True, repr(exc))

    @property
    def total_ok(self) -> int:
        return self.ok_new + self.ok_keepalive


def test_reloads_under_load_lose_nothing(
    gateway_factory: Callable[..., Gateway], clean_redis: redis.Redis
) -> None:
    gw = gateway_factory()
    dead_redis = f"redis://127.0.0.1:{free_port()}"
    steps: list[tuple[dict[str, Any] | None, str | None, str]] = [
        ({"server": {"workers": 3}}, None, "committed"),
        (None, "[server]\nworkers = 'x'\n", "invalid"),
        ({"server": {"workers": 2, "keepalive_timeout_seconds": 3.0}}, None, "committed"),
        ({"redis": {"url": dead_redis}}, None, "readiness_failed"),
        ({"observability": {"logging": {"level": "WARNING"}}}, None, "committed"),
    ]
    results = []
    with Load(gw.port) as load:
        for over, raw, _expected in steps:
            before = load.total_ok
            gw.write_config(over, raw=raw)
            result = gw.reload()
            results.append(result.stdout.split(":")[0])

            # Serving goes on after the reload (new requests succeed) before the next one.
            def served(before: int = before) -> bool:
                return load.total_ok >= before + 5 or bool(load.failed_new)

            wait_until(served, timeout=10, what="requests served after the reload")
    counter = int(clean_redis.get("counter") or 0)
    print(
        f"\nzero-downtime: new-connection ok={load.ok_new} failed={len(load.failed_new)}; "
        f"keep-alive ok={load.ok_keepalive} failed={len(load.failed_keepalive)} "
        f"retried={load.keepalive.retries} closes={load.keepalive.closes_announced}; "
        f"counter={counter}; reloads={results}"
    )
    assert results == [
        "reload committed",
        "reload failed (invalid)",
        "reload committed",
        "reload failed (readiness_failed)",
        "reload committed",
    ]
    assert load.failed_new == []
    assert load.failed_keepalive == []
    assert load.ok_new > 50
    assert counter == load.total_ok
    assert gw.status()["version"] == 4


def test_once_reload_returns_every_new_connection_gets_the_new_config(
    gateway_factory: Callable[..., Gateway],
) -> None:
    """`redis-gateway reload` answers once no old worker accepts connections: a request
    made right after it is never served by the old config (regression: the old workers
    were told to drain but could still accept for a moment, so `reload && curl` raced)."""
    gw = gateway_factory({"server": {"workers": 2}})
    for denied in (["GET"], ["SET"], ["GET"]):
        gw.write_config({"policy": {"denied_commands": denied}})
        result = gw.reload()
        assert result.returncode == 0, result.stdout + result.stderr
        allowed = "SET" if denied == ["GET"] else "GET"
        for _ in range(30):  # a fresh connection each
            assert http_get(gw.port, f"/{denied[0].lower()}/k/v")[0] == 403
            assert http_get(gw.port, f"/{allowed.lower()}/k/v")[0] != 403
