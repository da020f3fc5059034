"""What a running supervisor leaves on disk, and the cleanup of a dead one's leftovers.

* **The run file** ``<runtime dir>/redis-gateway-run-<key>-<pid>.json`` (mode 0600):
  ``pid``, ``config_path`` (the main config file's absolute path, or null),
  ``control_socket`` and ``started_at``. ``key`` is a hash of ``config_path``, so
  `redis-gateway reload|status -c F` finds F's supervisor even while F is invalid
  (``supervisor.locate``). Written by `run` once its control socket listens, removed
  at exit.
* **The runtime dir**: ``$XDG_RUNTIME_DIR``, else the temp dir (also where the default
  control socket lives).
* **The metrics dir** of the workers' samples: ``redis-gateway-metrics-<pid>-*`` in
  ``$RUNTIME_DIRECTORY`` (systemd) or the temp dir (``supervisor.metrics_workers``).

A supervisor that was SIGKILLed (or OOM-killed) ran no teardown. ``clean_dead`` at the
next start removes only what is provably dead: a run file whose pid is gone (or a
zombie), with its control socket if connecting to it is refused; a metrics dir whose
supervisor and every worker that wrote into it are gone. A reused pid only keeps a
leftover longer; it never removes a live one's. While ``orphans_draining`` (a dead
supervisor's metrics dir kept for its live workers), the next supervisor looks again
(``supervisor.services.leftovers``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

RUN_FILE_PREFIX = "redis-gateway-run-"
METRICS_DIR_PREFIX = "redis-gateway-metrics-"
_METRICS_DIR = re.compile(rf"^{METRICS_DIR_PREFIX}(\d+)-")
_SAMPLE_FILE = re.compile(r"_(\d+)\.db$")
#: A run file larger than this is not ours.
_MAX_RUN_FILE_BYTES = 4096


def runtime_dir() -> Path:
    """$XDG_RUNTIME_DIR, else the temp dir."""
    return Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())


def metrics_parent() -> str | None:
    """Where metrics dirs go: systemd's RuntimeDirectory (tmpfs) if any, else None
    (the temp dir)."""
    return os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or None


def metrics_dir_prefix() -> str:
    """The name prefix of this supervisor's metrics dir (its pid, for ``clean_dead``)."""
    return f"{METRICS_DIR_PREFIX}{os.getpid()}-"


def absolute_config_path(path: Path | str | None) -> str | None:
    """How a main config path is compared: absolute, normalised, symlinks kept (a
    Kubernetes mount's ``..data`` link changes target on every update)."""
    return None if path is None else os.path.abspath(path)


def _key(config_path: str | None) -> str:
    return hashlib.sha256((config_path or "").encode()).hexdigest()[:16]


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is dead; another user's is alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


@dataclass(frozen=True)
class RunFile:
    """One supervisor's run file (see the module docstring)."""

    pid: int
    config_path: str | None
    control_socket: str
    started_at: float

    @property
    def path(self) -> Path:
        return runtime_dir() / f"{RUN_FILE_PREFIX}{_key(self.config_path)}-{self.pid}.json"

    def write(self) -> Path:
        """Create it atomically, mode 0600; OSError if the runtime dir is not writable."""
        path = self.path
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(asdict(self), f)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    @classmethod
    def read(cls, path: Path) -> RunFile | None:
        """The run file at ``path``, or None if it is unreadable or not one."""
        try:
            if not _ours(path) or path.stat().st_size > _MAX_RUN_FILE_BYTES:
                return None
            data = json.loads(path.read_text())
            run = cls(
                int(data["pid"]),
                None if data["config_path"] is None else str(data["config_path"]),
                str(data["control_socket"]),
                float(data["started_at"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return run if run.path.name == path.name else None


def _ours(path: Path) -> bool:
    """Created by this user and not a symlink: in a shared temp dir, another user's file
    must not choose what we connect to or delete."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not path.is_symlink()


def running(config_path: str | None) -> list[RunFile]:
    """Live supervisors whose main config is ``config_path`` (absolute, or None)."""
    found = []
    for path in sorted(runtime_dir().glob(f"{RUN_FILE_PREFIX}{_key(config_path)}-*.json")):
        run = RunFile.read(path)
        if run is not None and run.config_path == config_path and pid_alive(run.pid):
            found.append(run)
    return found


def _refused(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False  # missing, or not ours to judge (e.g. permission denied)
    finally:
        probe.close()
    return False


def _metrics_dir_state(path: Path) -> str:
    """``live`` (its supervisor runs, or not ours), ``orphans`` (its supervisor is dead,
    some worker that wrote into it is not: it may still drain) or ``dead``."""
    match = _METRICS_DIR.match(path.name)
    if match is None or pid_alive(int(match.group(1))):
        return "live"
    pids = {int(m.group(1)) for f in path.glob("*.db") if (m := _SAMPLE_FILE.search(f.name))}
    return "orphans" if any(pid_alive(pid) for pid in pids) else "dead"


def _metrics_dirs() -> list[Path]:
    parent = Path(metrics_parent() or tempfile.gettempdir())
    return [p for p in parent.glob(f"{METRICS_DIR_PREFIX}*") if _ours(p) and p.is_dir()]


def orphans_draining() -> bool:
    """Whether a dead supervisor's metrics dir is kept because its workers still run."""
    return any(_metrics_dir_state(path) == "orphans" for path in _metrics_dirs())


def clean_dead() -> list[str]:
    """Remove dead supervisors' leftovers (module docstring); returns what was removed."""
    removed: list[str] = []
    for path in runtime_dir().glob(f"{RUN_FILE_PREFIX}*.json"):
        run = RunFile.read(path)
        if run is None or pid_alive(run.pid):
            continue
        if _refused(run.control_socket):
            with contextlib.suppress(OSError):
                os.unlink(run.control_socket)
                removed.append(run.control_socket)
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(str(path))
    for path in _metrics_dirs():
        if _metrics_dir_state(path) == "dead":
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed
