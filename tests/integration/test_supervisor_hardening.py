"""Issue 8, supervisor side: what workers inherit, the exposure warning, what a dead
supervisor leaves behind. Real `redis-gateway run` processes on 127.0.0.1."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import psutil
import redis

from tests.helpers import free_port, wait_until
from tests.integration.conftest import Gateway, pid_alive

CANARY = "canary-7f3e9b1d-worker-env"


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(
        entry.decode(errors="replace").partition("=")[::2] for entry in raw.split(b"\0") if entry
    )


def _children(gw: Gateway) -> list[psutil.Process]:
    assert gw.proc is not None
    return [
        p
        for p in psutil.Process(gw.proc.pid).children()
        if "gateway_worker" in " ".join(p.cmdline())
    ]


def test_workers_and_standbys_inherit_no_config_variable(
    gateway_factory: Callable[..., Gateway],
) -> None:
    """The secrets reach the workers over the config pipe only (issue 8, item 3)."""
    gw = gateway_factory(
        {"observability": {"metrics": {"enabled": True, "port": free_port()}}},
        env={
            "REDIS_GATEWAY_AUTH__JWT_SECRET": CANARY,
            "REDIS_GATEWAY_SERVER__MAX_BODY_BYTES": "1048576",
        },
    )
    # Two workers and at least one warm standby (started after the boot).
    wait_until(lambda: gw.status()["standby_workers"] >= 1, what="a standby worker")
    workers = gw.worker_pids()
    children = _children(gw)
    assert workers <= {p.pid for p in children}
    assert len(children) > len(workers), "no standby worker among the children"
    for child in children:
        env = _environ(child.pid)
        leaked = sorted(k for k in env if k.startswith("REDIS_GATEWAY_"))
        assert not leaked, f"worker {child.pid} inherited {leaked}"
        assert CANARY not in Path(f"/proc/{child.pid}/environ").read_text(errors="replace")
        # What a worker does need is still there.
        assert env.get("PROMETHEUS_MULTIPROC_DIR"), f"worker {child.pid}: no metrics dir"
    # The supervisor itself did read the variable (it is in its own environment).
    assert gw.proc is not None
    assert _environ(gw.proc.pid)["REDIS_GATEWAY_AUTH__JWT_SECRET"] == CANARY


def test_a_sigkilled_supervisors_leftovers_are_removed_at_the_next_start(
    gateway_factory: Callable[..., Gateway],
) -> None:
    """Run file, control socket and metrics dir of a supervisor that got no teardown
    (issue 8, item 11)."""
    rundir = Path(tempfile.mkdtemp(prefix="rg-rt-"))
    try:
        env = {"XDG_RUNTIME_DIR": str(rundir), "RUNTIME_DIRECTORY": str(rundir)}
        first = gateway_factory(
            {"observability": {"metrics": {"enabled": True, "port": free_port()}}}, env=env
        )
        [run_file] = rundir.glob("redis-gateway-run-*.json")
        [metrics_dir] = rundir.glob("redis-gateway-metrics-*")
        children = [p.pid for p in _children(first)]
        assert first.proc is not None
        first.proc.kill()
        first.proc.wait()
        # Its workers notice (EOF on their config pipe), drain and exit by themselves.
        wait_until(lambda: not any(pid_alive(pid) for pid in children), what="orphans gone")
        leftovers = [run_file, Path(first.control_socket), metrics_dir]
        assert all(p.exists() for p in leftovers)

        second = gateway_factory(
            {"observability": {"metrics": {"enabled": True, "port": free_port()}}}, env=env
        )
        assert not any(p.exists() for p in leftovers), [p for p in leftovers if p.exists()]
        assert "supervisor.leftovers_removed" in second.logs()
        assert len(list(rundir.glob("redis-gateway-run-*.json"))) == 1  # the second's own
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


def test_a_dead_supervisors_metrics_dir_goes_once_its_orphans_have_drained(
    gateway_factory: Callable[..., Gateway], clean_redis: redis.Redis
) -> None:
    """Restarted at once (as systemd's Restart= does), the new supervisor found the dead
    one's orphaned workers still draining, kept their metrics dir (rightly: they may
    still write into it), and never looked again: it outlived even its clean stop
    (found by the fault suite)."""
    rundir = Path(tempfile.mkdtemp(prefix="rg-rt-"))
    try:
        env = {"XDG_RUNTIME_DIR": str(rundir), "RUNTIME_DIRECTORY": str(rundir)}
        metrics = {"observability": {"metrics": {"enabled": True, "port": free_port()}}}
        first = gateway_factory(metrics, env=env)
        [metrics_dir] = rundir.glob("redis-gateway-metrics-*")
        orphans = [p.pid for p in _children(first)]
        # A request that keeps an orphan draining for ~2 s after its supervisor died.
        blpop = threading.Thread(target=lambda: first.get("/blpop/never-pushed/2", timeout=10))
        blpop.start()
        assert first.proc is not None
        wait_until(lambda: clean_redis.info("clients")["blocked_clients"] == 1, what="BLPOP")
        first.proc.kill()
        first.proc.wait()
        second = gateway_factory(
            {"observability": {"metrics": {"enabled": True, "port": free_port()}}}, env=env
        )
        assert any(pid_alive(pid) for pid in orphans), "an orphan still drains"
        assert metrics_dir.exists()  # kept while an orphan may write into it
        blpop.join(10)
        wait_until(lambda: not any(pid_alive(pid) for pid in orphans), what="orphans gone")
        wait_until(lambda: not metrics_dir.exists(), timeout=15, what="its metrics dir removed")
        assert "supervisor.leftovers_removed" in second.logs()
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
