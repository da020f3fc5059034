"""A real `redis-gateway run` for the benchmarks (`reload_under_load.py`, `faults.py`).

    gw = Gateway(workdir, redis_url, workers=2, loop="auto")       # starts it
    wait_for(lambda: gw.serving(2), 60, "the first generation")
    gw.write({**gw.base, "server": {...}}); outcome, seconds = gw.reload()
    gw.stop()                                                         # SIGTERM, then SIGKILL

The config is a TOML file in ``workdir`` rendered from ``base`` (sections by dotted
name); ``extra`` sections are merged over it, ``args`` are appended to the `run`
command line (``--set``, ``--secrets-dir``...) and ``env`` to its environment.
Everything the supervisor and its workers print goes to ``workdir/supervisor.log``;
``restart()`` starts the supervisor again with the same command (the log is appended).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway_worker.control_socket import request as control_request
from supervisor.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[1]
REDIS_GATEWAY = str(Path(sys.executable).with_name("redis-gateway"))

Sections = dict[str, dict[str, Any]]


def toml_value(value: Any) -> str:
    """One TOML value: strings, booleans, numbers, lists and inline tables."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def render(config: Sections) -> str:
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in values.items())
        lines.append("")
    return "\n".join(lines)


def merged(base: Sections, extra: Mapping[str, Mapping[str, Any]] | None) -> Sections:
    """``base`` with each section of ``extra`` updated over it (copies)."""
    out = {k: dict(v) for k, v in base.items()}
    for section, values in (extra or {}).items():
        out.setdefault(section, {}).update(values)
    return out


class Gateway:
    """A `redis-gateway run` subprocess, its config file and its control socket."""

    def __init__(
        self,
        workdir: Path,
        redis_url: str,
        workers: int,
        loop: str,
        watch: bool = False,
        *,
        extra: Mapping[str, Mapping[str, Any]] | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        control: str | None = None,
        default_control_socket: bool = False,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.metrics_port = free_port()
        self.env = {**os.environ, "GATEWAY_WORKER_LOOP": loop, **(env or {})}
        runtime = self.env.get("XDG_RUNTIME_DIR") or self.env.get("TMPDIR") or "/tmp"
        if default_control_socket:  # where the supervisor puts it unless told
            self.control = f"{runtime}/redis-gateway-{self.port}.sock"
        else:
            self.control = control or str(workdir / "control.sock")
        self.config_path = workdir / "gateway.toml"
        self.log_path = workdir / "supervisor.log"
        base: Sections = {
            "server": {
                "host": "127.0.0.1",
                "port": self.port,
                "workers": workers,
                "graceful_shutdown_timeout_seconds": 10,
                "reload_readiness_timeout_seconds": 10,
            },
            "redis": {"url": redis_url},
            "observability.logging": {"level": "INFO", "format": "json"},
            "observability.metrics": {"port": self.metrics_port},
            # Reloads come from the control socket only, so each one is attributable
            # (--fast: from the watcher, as in production with a mounted ConfigMap).
            "supervisor": {
                "control_socket": self.control,
                "watch_config": watch,
                "watch_debounce_ms": 100,
                "watch_settle_ms": 50,
            },
        }
        if default_control_socket:
            del base["supervisor"]["control_socket"]
        self.base = merged(base, extra)
        self.command = [REDIS_GATEWAY, "run", "--config", str(self.config_path), *args]
        self.write(self.base)
        self.log = self.log_path.open("ab")
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.command, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT, env=self.env
        )

    def restart(self) -> None:
        """Start the supervisor again (the previous one must have exited)."""
        assert self.proc.poll() is not None, "the supervisor still runs"
        if self.log.closed:
            self.log = self.log_path.open("ab")
        self.proc = self._spawn()

    def write(self, config: Sections | str) -> None:
        text = config if isinstance(config, str) else render(config)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)

    def status(self) -> dict[str, Any]:
        reply = control_request(self.control, {"cmd": "status"}, timeout=5)
        return reply["status"]  # type: ignore[no-any-return]

    def serving(self, workers: int) -> bool:
        if self.proc.poll() is not None:
            log = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the supervisor exited with {self.proc.returncode}:\n{log}")
        try:
            st = self.status()
        except Exception:
            return False
        ready = [
            w
            for w in st["workers"]
            if w["state"] == "ready" and w["generation"] == st["generation"]
        ]
        return len(ready) == workers and not st["reload_in_progress"]

    def reload(self, timeout: float = 60) -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        reply = control_request(self.control, {"cmd": "reload"}, timeout=timeout)
        return reply["reload"], time.monotonic() - started

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait (SIGKILL after ``timeout``); the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
