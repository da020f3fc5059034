"""Integration fixtures: a real `redis-gateway run` subprocess, and small HTTP clients.

Reuse them from any integration test:

``gateway_factory`` (function-scoped) starts supervisors::

    def test_x(gateway_factory):
        gw = gateway_factory({"server": {"workers": 3}})   # deep-merged over the defaults
        status, body = gw.get("/incr/k")                  # new connection per request
        gw.write_config({"server": {"workers": 2}})        # rewrite the TOML file...
        assert gw.reload().returncode == 0                # ...and `redis-gateway reload`
        assert gw.status()["version"] == 2                # via the control socket

    Defaults: 127.0.0.1 on a free port, 2 workers, ``redis.url`` = the session
    ``redis_url``, metrics off, watcher off, graceful timeout 3 s, readiness timeout
    20 s (generous for a loaded machine; readiness-failure tests point redis.url at a
    closed port, which fails at once), JSON logs captured in ``gw.log_path``.
    ``wait=False`` returns before the first generation is ready (boot-failure tests);
    ``extra_args`` are appended to the `run` command line; ``env`` is added to the
    supervisor's environment. Every process is killed at
    teardown (SIGKILL of the supervisor and of its workers).

``gateway`` is ``gateway_factory()`` with the defaults.

Client helpers: ``http_get(port, path)`` (one new connection, returns status and
parsed JSON body) and ``KeepAliveClient`` (one persistent connection; reconnects
when the server closed it, and counts the requests it had to retry).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import tomli_w

from gateway_worker.control_socket import request
from tests.helpers import free_port, wait_until

REDIS_GATEWAY = [str(Path(sys.executable).parent / "redis-gateway")]


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, Any]:
    """GET on a new connection; (status, JSON body or raw text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw.decode(errors="replace")


class KeepAliveClient:
    """One persistent HTTP/1.1 connection, reopened when the server closed it.

    A request that fails on a *reused* connection before any reply byte arrived is
    retried once on a fresh connection (RFC 9112 §9.3.1 allows it for idempotent
    requests); ``retries`` counts those, ``closes_announced`` the replies that carried
    ``Connection: close``.
    """

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.port = port
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        self.retries = 0
        self.closes_announced = 0

    def get(self, path: str) -> tuple[int, Any]:
        reused = self.conn is not None
        try:
            return self._get(path)
        except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
            self.close()
            if not reused:
                raise
            self.retries += 1
            return self._get(path)

    def _get(self, path: str) -> tuple[int, Any]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        raw = resp.read()
        if (resp.getheader("connection") or "").lower() == "close":
            self.closes_announced += 1
            self.close()
        return resp.status, json.loads(raw)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Gateway:
    """A `redis-gateway run` subprocess with its config file and control socket."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.config_path = workdir / "gateway.toml"
        self.log_path = workdir / "gateway.log"
        self.config = config
        self.port: int = config["server"]["port"]
        self.control_socket: str = config["supervisor"]["control_socket"]
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._stderr: str | None = None
        self.write_config()

    def write_config(self, over: dict[str, Any] | None = None, raw: str | None = None) -> None:
        """Rewrite the config file: defaults deep-merged with ``over``, or ``raw`` text."""
        if raw is not None:
            self.config_path.write_text(raw)
            return
        data = deep_merge(self.config, over or {})
        self.config_path.write_text(tomli_w.dumps(data))

    def start(
        self, extra_args: tuple[str, ...] = (), wait: bool = True, env: dict[str, str] | None = None
    ) -> Gateway:
        """Start `redis-gateway run` (again, after the previous one exited)."""
        if self.proc is not None:
            assert self.proc.poll() is not None, "the previous supervisor still runs"
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self._stderr = None
        if self._log is not None:
            self._log.close()
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*REDIS_GATEWAY, "run", "--config", str(self.config_path), *extra_args],
            stdout=self._log,
            stderr=subprocess.PIPE,
            cwd=self.workdir,
            env={**os.environ, **env} if env else None,
        )
        if wait:
            wait_until(self._ready, timeout=40, what="gateway ready")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"gateway exited with {self.proc.returncode}: {self.stderr()}")
        workers = self.status()["workers"]
        return (
            bool(workers)
            and all(w["state"] == "ready" for w in workers)
            and (http_get(self.port, "/healthz")[0] == 200)
        )

    def stderr(self) -> str:
        """Everything the supervisor wrote to stderr (once it exited)."""
        if self._stderr is None:
            if self.proc is None or self.proc.stderr is None or self.proc.poll() is None:
                return ""
            self._stderr = self.proc.stderr.read().decode(errors="replace")
        return self._stderr

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        return http_get(self.port, path, timeout)

    def status(self) -> dict[str, Any]:
        reply = request(self.control_socket, {"cmd": "status"}, 5.0)
        return reply["status"]  # type: ignore[no-any-return]

    def status_text(self) -> str:
        """What `redis-gateway status` prints for this supervisor."""
        return subprocess.run(
            [*REDIS_GATEWAY, "status", "--control-socket", self.control_socket],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout

    def worker_pids(self, state: str = "ready") -> set[int]:
        return {w["pid"] for w in self.status()["workers"] if w["state"] == state}

    def reload(self, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """`redis-gateway reload` against this supervisor."""
        return subprocess.run(
            [
                *REDIS_GATEWAY,
                "reload",
                "--control-socket",
                self.control_socket,
                "--timeout",
                str(timeout),
            ],
            capture_output=True,
            text=True,
            timeout=timeout + 10,
            check=False,
        )

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Kill the supervisor and every process it started (teardown)."""
        if self.proc is not None:
            try:
                children = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                children = []
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            for child in children:
                try:
                    child.kill()
                except psutil.NoSuchProcess:
                    pass
            # psutil.wait_procs polls non-children slowly (~1.7 s here); this is faster.
            wait_until(
                lambda: not any(pid_alive(c.pid) for c in children),
                timeout=10,
                what="gateway processes gone",
            )
            if self.proc.stderr is not None:
                self.proc.stderr.close()
        if self._log is not None:
            self._log.close()


def base_config(redis_url: str, sockdir: Path) -> dict[str, Any]:
    return {
        "server": {
            "host": "127.0.0.1",
            "port": free_port(),
            "workers": 2,
            "graceful_shutdown_timeout_seconds": 3.0,
            # Generous: a loaded CI machine can take seconds to boot interpreters.
            "reload_readiness_timeout_seconds": 20.0,
        },
        "redis": {"url": redis_url, "connection_timeout_seconds": 1.0},
        # JSON logs (the dev profile's default is the console format): tests parse them.
        "observability": {"metrics": {"enabled": False}, "logging": {"format": "json"}},
        "supervisor": {
            # Versions, backups and history of this gateway alone (never a shared dir).
            "state_dir": str(sockdir / "state"),
            "watch_config": False,
            # AF_UNIX paths are limited to ~107 bytes: pytest's tmp_path can be longer.
            "control_socket": str(sockdir / "ctl.sock"),
            "heartbeat_interval_seconds": 0.5,
        },
    }


@pytest.fixture
def gateway_factory(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []
    sockdirs: list[str] = []

    def start(
        over: dict[str, Any] | None = None,
        extra_args: tuple[str, ...] = (),
        wait: bool = True,
        env: dict[str, str] | None = None,
    ) -> Gateway:
        sockdir = tempfile.mkdtemp(prefix="rg-")
        sockdirs.append(sockdir)
        workdir = tmp_path / f"gw{len(started)}"
        workdir.mkdir()
        config = deep_merge(base_config(redis_url, Path(sockdir)), over or {})
        gw = Gateway(workdir, config)
        started.append(gw)
        return gw.start(extra_args, wait, env)

    try:
        yield start
    finally:
        for gw in started:
            gw.stop()
        for d in sockdirs:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def gateway(gateway_factory: Callable[..., Gateway]) -> Gateway:
    return gateway_factory()


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


__all__ = ["Gateway", "KeepAliveClient", "http_get", "pid_alive"]
