"""The processes of the throughput benchmark: Webdis and gateways on 127.0.0.1, their
CPU time and memory, and stopping them within a deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil

from gateway_worker.control_socket import request
from supervisor.embedded_redis import free_port

ROOT = Path(__file__).resolve().parent.parent


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


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (10^6 bytes); NaN once it is gone."""
    try:
        return float(psutil.Process(pid).memory_info().rss) / 1e6
    except psutil.NoSuchProcess:
        return float("nan")


def wait_ok(
    url: str, what: str, timeout: float = 30.0, headers: dict[str, str] | None = None
) -> None:
    """Poll ``url`` until it answers 200, or exit naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer 200 at {url} within {timeout}s")


def start_webdis(redis_port: int, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """Webdis (2 threads) on 127.0.0.1:``port`` in front of the Redis on ``redis_port``."""
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
        ["webdis", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def start_gateway(
    redis_url: str | None,
    port: int,
    workers: int,
    engine: str | None = None,
    redis_sets: dict[str, str] | None = None,
    rundir: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``redis-gateway run`` on ``port``; ``redis_sets``: other settings (a cluster's
    ``redis.mode`` and ``redis.nodes``, auth, rate limiting), as ``--set`` values.
    ``rundir``: where its state directory and its control socket
    (:func:`control_socket`) go, instead of the user's defaults."""
    exe = ROOT / ".venv" / "bin" / "redis-gateway"
    sets: dict[str, object] = {
        "server.host": "127.0.0.1",
        "server.port": port,
        "server.workers": workers,
        "observability.metrics.port": free_port(),
        "observability.logging.level": "WARNING",
        "supervisor.watch_config": "false",
    }
    if rundir is not None:
        sets["supervisor.state_dir"] = rundir / f"state-{port}"
        sets["supervisor.control_socket"] = control_socket(rundir, port)
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


def control_socket(rundir: Path, port: int) -> Path:
    """The control socket of the gateway started on ``port`` with ``rundir``."""
    return rundir / f"ctl-{port}.sock"


def serving_pids(socket_path: Path) -> set[int]:
    """The pids of the workers the supervisor lists (not its warm standbys)."""
    reply = request(str(socket_path), {"cmd": "status"}, 5.0)
    status = reply.get("status")
    workers = status.get("workers", []) if isinstance(status, dict) else []
    return {w["pid"] for w in workers if isinstance(w, dict) and isinstance(w.get("pid"), int)}


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL of its whole process group after ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def worker_pids(supervisor_pid: int) -> list[int]:
    """The supervisor's child processes (its workers, and a warm standby if any)."""
    try:
        return sorted(c.pid for c in psutil.Process(supervisor_pid).children())
    except psutil.NoSuchProcess:
        return []


def connections_held(pids: list[int], port: int) -> list[int]:
    """Established connections to ``port`` held by each of ``pids`` that listens on it
    (the workers, and warm standbys, which hold none), busiest first."""
    held = []
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections("tcp")
        except psutil.NoSuchProcess:
            continue
        mine = [c for c in conns if c.laddr.port == port]
        if any(c.status == psutil.CONN_LISTEN for c in mine):
            held.append(sum(1 for c in mine if c.status == psutil.CONN_ESTABLISHED))
    return sorted(held, reverse=True)
