"""`redis-gateway run` as a real subprocess: serving, reloads, failures, lifecycle."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.helpers import free_port, wait_until
from tests.integration.conftest import REDIS_GATEWAY, Gateway, http_get, pid_alive

pytestmark = pytest.mark.integration

Factory = Callable[..., Gateway]


def test_serves_reports_status_and_stops_cleanly_on_sigterm(gateway: Gateway) -> None:
    assert gateway.get("/set/k/v") == (200, {"result": "OK"})
    assert gateway.get("/get/k") == (200, {"result": "v"})
    st = gateway.status()
    assert (st["generation"], st["version"], st["desired_workers"]) == (1, 1, 2)
    assert len(gateway.worker_pids()) == 2
    pids = gateway.worker_pids()
    gateway.signal(signal.SIGTERM)
    assert gateway.wait_exit() == 0
    assert not any(pid_alive(p) for p in pids)


def test_sighup_with_new_worker_count_starts_a_new_generation(gateway: Gateway) -> None:
    old = gateway.worker_pids()
    gateway.write_config({"server": {"workers": 3}})
    gateway.signal(signal.SIGHUP)
    st = wait_until(
        lambda: (s := gateway.status())["version"] == 2 and s, timeout=30, what="version 2"
    )
    assert st["generation"] == 2
    assert st["last_reload"]["result"] == "committed"
    assert st["last_reload"]["changed"] == ["server.workers"]
    new = gateway.worker_pids()
    assert len(new) == 3 and not (new & old)
    wait_until(lambda: not any(pid_alive(p) for p in old), what="old generation exited")
    assert gateway.get("/healthz")[0] == 200


def test_invalid_config_is_refused_while_serving_goes_on(gateway: Gateway) -> None:
    pids = gateway.worker_pids()
    gateway.write_config({"server": {"workers": "many"}})
    result = gateway.reload()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "reload failed (invalid)" in result.stdout
    assert "server.workers" in result.stdout
    assert gateway.get("/incr/invalid-cfg")[0] == 200
    st = gateway.status()
    assert st["version"] == 1 and st["last_reload"]["result"] == "invalid"
    assert gateway.worker_pids() == pids

    gateway.write_config({"server": {"workers": 2, "keepalive_timeout_seconds": 7.0}})
    result = gateway.reload()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("reload committed: version 2 (hash ")
    result = gateway.reload()
    assert result.returncode == 0 and "reload unchanged: version 2" in result.stdout


def test_new_workers_failing_readiness_revert_to_the_old_generation(gateway: Gateway) -> None:
    pids = gateway.worker_pids()
    gateway.write_config({"redis": {"url": f"redis://127.0.0.1:{free_port()}"}})
    result = gateway.reload()
    assert result.returncode == 1
    assert "reload failed (readiness_failed): worker " in result.stdout
    assert "Redis did not answer PING" in result.stdout
    st = gateway.status()
    assert (st["version"], st["generation"]) == (1, 1)
    assert st["last_reload"]["result"] == "readiness_failed"
    assert gateway.worker_pids() == pids
    assert gateway.get("/incr/after-revert")[0] == 200


def test_a_killed_worker_is_replaced(gateway: Gateway) -> None:
    victim = sorted(gateway.worker_pids())[0]
    psutil.Process(victim).kill()
    wait_until(
        lambda: len(pids := gateway.worker_pids()) == 2 and victim not in pids,
        what="replacement ready",
    )
    assert any(w["restarts"] == 1 for w in gateway.status()["workers"])
    assert gateway.get("/healthz")[0] == 200


def test_workers_exit_by_themselves_when_the_supervisor_is_killed(gateway: Gateway) -> None:
    pids = gateway.worker_pids()
    gateway.signal(signal.SIGKILL)
    gateway.wait_exit()
    wait_until(
        lambda: not any(pid_alive(p) for p in pids), timeout=10, what="orphaned workers exited"
    )


def test_first_generation_that_cannot_boot_exits_non_zero(gateway_factory: Factory) -> None:
    dead = f"redis://127.0.0.1:{free_port()}"
    gw = gateway_factory({"redis": {"url": dead}}, wait=False)
    assert gw.wait_exit() == 1
    err = gw.stderr()
    assert "first generation could not boot" in err
    assert "Redis did not answer PING" in err


def test_invalid_config_at_start_exits_1_with_every_problem(gateway_factory: Factory) -> None:
    gw = gateway_factory({"server": {"workers": 0, "max_connections": 0}}, wait=False)
    assert gw.wait_exit() == 1
    err = gw.stderr()
    assert "server.workers" in err and "server.max_connections" in err


def test_sigttin_and_sigttou_change_the_worker_count(gateway: Gateway) -> None:
    gateway.signal(signal.SIGTTIN)
    wait_until(lambda: len(gateway.worker_pids()) == 3, what="3 workers")
    # One signal at a time: two identical pending signals are delivered once.
    gateway.signal(signal.SIGTTOU)
    wait_until(lambda: len(gateway.status()["workers"]) == 2, what="2 workers")
    gateway.signal(signal.SIGTTOU)
    wait_until(lambda: len(gateway.status()["workers"]) == 1, what="1 worker")
    assert gateway.status()["desired_workers"] == 1


def test_status_command_prints_generation_workers_and_last_reload(gateway: Gateway) -> None:
    gateway.signal(signal.SIGHUP)
    wait_until(lambda: gateway.status()["last_reload"], what="a reload result")
    result = subprocess.run(
        [*REDIS_GATEWAY, "status", "--control-socket", gateway.control_socket],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "config version 1 (hash " in result.stdout
    assert "generation 1, 2 worker(s) desired" in result.stdout
    assert "last reload: unchanged" in result.stdout
    assert sum(" ready " in line for line in result.stdout.splitlines()) == 2


def test_dev_profile_without_redis_url_runs_an_embedded_redis(tmp_path: Path) -> None:
    """The README's `redis-gateway run --profile dev`, on free ports."""
    port = free_port()
    sockdir = tempfile.mkdtemp(prefix="rg-")
    sock = f"{sockdir}/ctl.sock"
    proc = subprocess.Popen(
        [
            *REDIS_GATEWAY,
            "run",
            "--profile",
            "dev",
            "--set",
            f"server.port={port}",
            "--set",
            "server.host=127.0.0.1",
            "--set",
            "server.workers=1",
            "--set",
            "observability.metrics.enabled=false",
            "--set",
            f"supervisor.control_socket={sock}",
            "--set",
            "supervisor.watch_config=false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        wait_until(
            lambda: http_get(port, "/set/dev/yes")[0] == 200, timeout=20, what="dev gateway serving"
        )
        assert http_get(port, "/get/dev") == (200, {"result": "yes"})
        children = psutil.Process(proc.pid).children()
        servers = [c for c in children if c.name().startswith(("valkey-server", "redis-server"))]
        assert len(servers) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        wait_until(lambda: not pid_alive(servers[0].pid), what="embedded Redis stopped")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
        shutil.rmtree(sockdir, ignore_errors=True)


def test_a_worker_with_a_blocked_loop_is_killed_and_replaced(gateway_factory: Factory) -> None:
    gw = gateway_factory(
        {"supervisor": {"heartbeat_interval_seconds": 0.2, "heartbeat_timeout_seconds": 1.0}}
    )
    frozen = sorted(gw.worker_pids())[0]
    psutil.Process(frozen).suspend()  # SIGSTOP: no heartbeat, no reaction to SIGTERM
    wait_until(lambda: not pid_alive(frozen), timeout=15, what="frozen worker killed")
    wait_until(lambda: len(gw.worker_pids()) == 2, what="replacement ready")
    assert "worker.heartbeat_missed" in gw.logs() and "worker.killed" in gw.logs()


def test_config_file_change_is_reloaded_by_the_watcher(gateway_factory: Factory) -> None:
    gw = gateway_factory(
        {"supervisor": {"watch_config": True, "watch_debounce_ms": 100}},
        extra_args=("--pidfile", "gw.pid"),
    )
    assert (gw.workdir / "gw.pid").read_text().strip() == str(gw.status()["pid"])
    gw.write_config({"server": {"workers": 1}})
    st = wait_until(
        lambda: (s := gw.status())["version"] == 2 and s, timeout=30, what="watcher reload"
    )
    assert st["last_reload"]["trigger"].startswith("watch")
    assert st["desired_workers"] == 1
    gw.signal(signal.SIGTERM)
    assert gw.wait_exit() == 0
    assert not (gw.workdir / "gw.pid").exists()


def test_admin_reload_endpoint_goes_through_the_control_socket(gateway_factory: Factory) -> None:
    key = "admin-key-0123456789"
    gw = gateway_factory(
        {
            "auth": {"enabled": True, "api_keys": [{"name": "ops", "key": key, "admin": True}]},
            "features": {"admin_endpoints": True},
        }
    )
    gw.write_config(
        {
            "auth": {"enabled": True, "api_keys": [{"name": "ops", "key": key, "admin": True}]},
            "features": {"admin_endpoints": True},
            "server": {"workers": 1},
        }
    )
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        conn.request("POST", "/admin/reload", headers={"X-API-Key": key})
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 200, body
    assert body["reload"]["result"] == "committed" and body["reload"]["version"] == 2
    assert gw.status()["desired_workers"] == 1
