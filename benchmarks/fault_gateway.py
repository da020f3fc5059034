"""The gateway of `faults.py`'s scenarios: a `redis-gateway run`
(``benchmarks.gateway_process.Gateway``) holding every canary of
``benchmarks.fault_harness.Canaries``: auth on, admin endpoints and metrics on, its
secrets from a secrets dir, env, ``--set``, API keys in the file and in a ``key_file``;
its own runtime and temp dir (so whatever it leaves behind is found), state dir and
default control socket path. It collects every output a secret could leak into, and
what a clean stop left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from benchmarks.fault_harness import Canaries, SuiteRedis, http, poll
from benchmarks.gateway_process import REDIS_GATEWAY, ROOT, Gateway, Sections, wait_for
from supervisor.workers.standby import STANDBY_MAX


class FaultGateway:
    """A gateway holding every canary, in ``root/name`` (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        name: str,
        suite_redis: SuiteRedis,
        canaries: Canaries,
        workers: int = 2,
        extra: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.workdir = root / name
        self.rundir = self.workdir / "run"
        self.state_dir = self.workdir / "state"
        self.secrets_dir = self.workdir / "secrets"
        for d in (self.rundir, self.state_dir, self.secrets_dir, self.workdir / "keys"):
            d.mkdir(parents=True, exist_ok=True)
        self.canaries = canaries
        self.admin_key = canaries["api_key_file"]
        self.reader_key = canaries["api_key_keyfile"]
        (self.secrets_dir / "auth.jwt_secret").write_text(canaries["jwt_secret_file"])
        key_file = self.workdir / "keys" / "reader"
        key_file.write_text(self.reader_key)
        for f in (self.secrets_dir / "auth.jwt_secret", key_file):
            f.chmod(0o600)
        self.env = {
            "REDIS_GATEWAY_REDIS__DEFAULT_PASSWORD": canaries["redis_password_env"],
            "XDG_RUNTIME_DIR": str(self.rundir),
            "TMPDIR": str(self.rundir),
            "XDG_STATE_HOME": str(self.state_dir),
        }
        self.inputs = [
            "--secrets-dir",
            str(self.secrets_dir),
            "--set",
            f'auth.jwt_previous_secrets=["{canaries["previous_secret_set"]}"]',
        ]
        sections: Sections = {
            "auth": {
                "enabled": True,
                "api_keys": [
                    {"name": "admin", "key": self.admin_key, "admin": True},
                    {"name": "reader", "key_file": str(key_file), "policy": "read_only"},
                ],
            },
            "features": {"admin_endpoints": True},
            "supervisor": {"state_dir": str(self.state_dir)},
        }
        for section, values in (extra or {}).items():
            sections.setdefault(section, {}).update(values)
        self.gw = Gateway(
            self.workdir, suite_redis.url, workers, "auto",
            extra=sections, args=self.inputs, env=self.env, default_control_socket=True,
        )  # fmt: skip
        self.port = self.gw.port
        self.children_seen: set[int] = set()

    @property
    def auth(self) -> dict[str, str]:
        return {"X-API-Key": self.admin_key}

    def wait_serving(self, workers: int, timeout: float = 60) -> None:
        wait_for(lambda: self.gw.serving(workers), timeout, f"{workers} workers ready")

    def settled(self, timeout: float = 15) -> None:
        """Wait until every warm standby worker is there (``STANDBY_MAX`` at most)."""

        def full() -> bool:
            st = self.gw.status()
            return bool(st["standby_workers"] >= min(STANDBY_MAX, st["desired_workers"]))

        with contextlib.suppress(TimeoutError):
            poll(full, timeout, "the standby workers", 0.05)

    def fds(self) -> tuple[int, tuple[int, int, int]]:
        """The supervisor's open descriptors (fewest of a few looks: a control
        connection may be closing), with what they depend on: its pid, workers, standbys."""
        self.settled()
        seen = []
        for _ in range(5):
            st = self.gw.status()
            shape = (self.gw.proc.pid, len(st["workers"]), st["standby_workers"])
            seen.append((psutil.Process(self.gw.proc.pid).num_fds(), shape))
            time.sleep(0.02)
        return min(seen)

    def fds_back_to(self, baseline: tuple[int, tuple[int, int, int]], timeout: float) -> str | None:
        """None once the supervisor holds no more descriptors than ``baseline`` with the
        same workers and standbys; else what it holds (a supervisor restarted since: None)."""
        if baseline[1][0] != self.gw.proc.pid:
            return None
        deadline = time.monotonic() + timeout
        while True:
            now = self.fds()
            if now[1] == baseline[1] and now[0] <= baseline[0]:
                return None
            if time.monotonic() > deadline:
                return f"supervisor descriptors {baseline} at the start, {now} at the end"
            time.sleep(0.2)

    def children(self) -> list[psutil.Process]:
        """The supervisor's processes now (remembered for the leftover check)."""
        try:
            found = psutil.Process(self.gw.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        self.children_seen |= {p.pid for p in found}
        return found

    def cli(self, *args: str, inputs: str = "all", timeout: float = 30) -> str:
        """A `redis-gateway` command with this gateway's config inputs (``all``), its
        config file only (``config``: reload, status, config diff) or nothing; what it
        printed (stdout, stderr)."""
        extra = {
            "all": ["-c", str(self.gw.config_path), *self.inputs],
            "config": ["-c", str(self.gw.config_path)],
        }.get(inputs, [])
        done = subprocess.run(
            [REDIS_GATEWAY, *args, *extra], capture_output=True, text=True, timeout=timeout,
            cwd=ROOT, env={**os.environ, **self.env}, check=False,
        )  # fmt: skip
        return f"$ {' '.join(args)} (exit {done.returncode})\n{done.stdout}{done.stderr}"

    def outputs_while_running(self, cli: bool) -> dict[str, str]:
        """Everything a secret could leak into while it runs: status, metrics, admin
        endpoints, error replies, the workers' environments (and CLI commands)."""
        out: dict[str, str] = {}
        out["status (control socket)"] = json.dumps(self.gw.status())
        out["/metrics"] = http(self.gw.metrics_port, "/metrics")[1].decode(errors="replace")
        for path in ("/admin/config", "/admin/config?sources=1", "/admin/status"):
            out[path] = http(self.port, path, self.auth)[1].decode(errors="replace")
        bad_jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
        errors = [
            ("/get/k", {"X-API-Key": "wrong-key-0123456789"}),
            ("/get/k", {"Authorization": f"Bearer {bad_jwt}"}),
            ("/get/k", {"Authorization": "Basic eA=="}),
            ("/admin/config", {"X-API-Key": self.reader_key}),
            ("/incr/k", {"X-API-Key": self.reader_key}),
            ("/nope/x", self.auth),
            ("/webdis//GET/k", self.auth),
            ("/config/get/requirepass", self.auth),
        ]
        for i, (path, headers) in enumerate(errors):
            status, body = http(self.port, path, headers)
            out[f"reply #{i} {status} {path}"] = body.decode(errors="replace")
        for child in self.children():
            with contextlib.suppress(OSError):
                environ = Path(f"/proc/{child.pid}/environ").read_bytes()
                out[f"/proc/{child.pid}/environ"] = environ.decode(errors="replace")
        if cli:  # found through its run file, as an operator would
            out["status --json"] = self.cli("status", "--json", inputs="config")
        return out

    def outputs_after_stop(self) -> dict[str, str]:
        """The log and every file of the state directory."""
        out = {"supervisor log": self.gw.logs()}
        for path in sorted(self.state_dir.rglob("*")):
            if path.is_file():
                out[f"state {path.relative_to(self.state_dir)}"] = path.read_bytes().decode(
                    errors="replace"
                )
        return out

    def stop_cleanly(self, timeout: float = 30) -> list[str]:
        """SIGTERM; then what is left behind: processes, files in its runtime dir."""
        self.children()
        code = self.gw.stop(timeout)
        left = [f"supervisor exit code {code}"] if code not in (0, -15) else []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in self.alive()):
            time.sleep(0.05)
        left += [f"process {pid} still alive" for pid in self.alive()]
        left += [f"file {p.name} left in the runtime dir" for p in self.rundir.iterdir()]
        return left

    def alive(self) -> list[int]:
        alive = []
        for pid in self.children_seen:
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
        return alive

    def kill_everything(self) -> None:
        """Teardown after a failure: SIGKILL the supervisor and every process it had."""
        self.children()
        with contextlib.suppress(OSError):
            self.gw.proc.kill()
        with contextlib.suppress(Exception):
            self.gw.proc.wait(10)
        for pid in self.alive():
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
        if not self.gw.log.closed:
            self.gw.log.close()
