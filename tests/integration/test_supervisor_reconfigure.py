"""Hot reload of the supervisor's own services on a real `redis-gateway run`: the config
watcher (on/off, watched paths, acknowledged inputs) and the metrics endpoint."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import tomli_w

from tests.helpers import free_port, wait_until
from tests.integration.conftest import Gateway, deep_merge

pytestmark = pytest.mark.integration

Factory = Callable[..., Gateway]
WATCH_ON = {
    "supervisor": {"watch_config": True, "watch_debounce_ms": 100, "recheck_interval_seconds": 0}
}


def _save(gw: Gateway, over: dict[str, Any]) -> None:
    """Atomic save (as editors do), and remember it as the gateway's base config."""
    gw.config = deep_merge(gw.config, over)
    tmp = gw.config_path.with_name(".gateway.toml.swp")
    tmp.write_text(tomli_w.dumps(gw.config))
    os.replace(tmp, gw.config_path)


def _version(gw: Gateway, version: int) -> dict[str, Any]:
    return wait_until(
        lambda: (s := gw.status())["version"] == version and s,
        timeout=20,
        what=f"config version {version}",
    )


def _stays(gw: Gateway, reloads: dict[str, int], seconds: float) -> None:
    """No further reload for ``seconds`` (the absence of an event needs a window)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert gw.status()["reloads"] == reloads
        time.sleep(0.05)


def test_watcher_starts_stops_and_watches_a_new_profile_file_on_reload(
    gateway_factory: Factory,
) -> None:
    gw = gateway_factory({"server": {"workers": 1}})
    _save(gw, WATCH_ON)
    assert gw.reload().returncode == 0  # watch_config false -> true
    _version(gw, 2)

    _save(gw, {"server": {"request_timeout_seconds": 11}})
    status = _version(gw, 3)
    assert status["last_reload"]["trigger"].startswith("watch")

    # A profile overlay that did not exist at start-up is an input too.
    overlay = gw.config_path.with_name("gateway.dev.toml")
    overlay.write_text("[server]\nrequest_timeout_seconds = 12\n")
    status = _version(gw, 4)
    assert status["last_reload"]["changed"] == ["server.request_timeout_seconds"]

    _save(gw, {"supervisor": {"watch_config": False}})  # seen by the watcher, then off
    status = _version(gw, 5)
    _save(gw, {"server": {"request_timeout_seconds": 13}})
    _stays(gw, status["reloads"], 1.0)


def test_edit_then_sighup_reloads_once_without_an_unchanged_echo(
    gateway_factory: Factory,
) -> None:
    debounce_ms = 1000
    gw = gateway_factory(
        {
            "server": {"workers": 1},
            "supervisor": {**WATCH_ON["supervisor"], "watch_debounce_ms": debounce_ms},
        }
    )
    _save(gw, {"server": {"request_timeout_seconds": 14}})
    gw.signal(signal.SIGHUP)  # `systemctl reload` right after saving
    status = _version(gw, 2)
    assert status["last_reload"]["trigger"] == "SIGHUP"
    # Past the watcher's debounce: it must not report the content SIGHUP loaded.
    _stays(gw, {"committed": 1}, debounce_ms / 1000 + 1.0)


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def _refused(port: int) -> bool:
    try:
        _scrape(port)
    except (urllib.error.URLError, ConnectionError):
        return True
    return False


def test_metrics_endpoint_is_started_moved_and_stopped_by_reloads(
    gateway_factory: Factory,
) -> None:
    gw = gateway_factory({"server": {"workers": 1}})
    port = free_port()
    _save(gw, {"observability": {"metrics": {"enabled": True, "port": port}}})
    assert gw.reload().returncode == 0
    # The generation started by that reload reports its requests too. The reload is
    # committed once the new workers are ready, while the old generation (started
    # without metrics) may still accept for a moment: wait until only the new one is left.
    gen = gw.status()["generation"]
    wait_until(
        lambda: all(
            w["generation"] == gen for w in gw.status()["workers"] if w["state"] != "standby"
        ),
        timeout=15,
        what="old generation drained",
    )
    assert gw.get("/incr/metrics-reload")[0] == 200
    text = wait_until(
        lambda: (t := _scrape(port)) and "redis_gateway_requests_total{" in t and t,
        timeout=10,
        what="worker request metrics",
    )
    assert "redis_gateway_config_version 2.0" in text

    _save(gw, {"observability": {"metrics": {"enabled": False}}})
    assert gw.reload().returncode == 0
    wait_until(lambda: _refused(port), timeout=5, what="metrics endpoint closed")

    moved = free_port()
    _save(gw, {"observability": {"metrics": {"enabled": True, "port": moved}}})
    assert gw.reload().returncode == 0
    text = _scrape(moved)
    assert "redis_gateway_config_version 4.0" in text
    assert 'redis_gateway_reloads_total{result="committed"} 3.0' in text
    assert _refused(port)
