"""Run files and the cleanup of dead supervisors' leftovers (``supervisor.runtime_files``),
in a private runtime dir; "dead" pids are real processes that exited."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from supervisor.runtime_files import (
    METRICS_DIR_PREFIX,
    RunFile,
    clean_dead,
    orphans_draining,
    pid_alive,
    running,
)
from supervisor.triggers.control import SupervisorIdentity


@pytest.fixture
def rundir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    return tmp_path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _stale_socket(path: Path) -> None:
    """A socket file nobody listens on (what a SIGKILLed supervisor leaves)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()


def test_pid_alive_treats_a_zombie_as_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while pid_alive(proc.pid):  # exits, stays a zombie until waited for
        assert time.monotonic() < deadline, "child never exited"
        time.sleep(0.01)
    assert Path(f"/proc/{proc.pid}").exists()  # still a zombie: kill(pid, 0) succeeds
    proc.wait()
    assert pid_alive(os.getpid()) and not pid_alive(proc.pid)


def test_a_run_file_is_private_and_found_by_its_config_path(rundir: Path) -> None:
    mine = RunFile(os.getpid(), "/etc/gw/gateway.toml", str(rundir / "ctl.sock"), 1.0)
    path = mine.write()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    RunFile(os.getpid(), None, str(rundir / "other.sock"), 1.0).write()
    assert running("/etc/gw/gateway.toml") == [mine]
    assert running("/etc/gw/other.toml") == []
    assert [r.control_socket for r in running(None)] == [str(rundir / "other.sock")]
    RunFile(_dead_pid(), "/etc/gw/gateway.toml", "/nowhere.sock", 1.0).write()
    assert running("/etc/gw/gateway.toml") == [mine]  # a dead one is not running
    mine.remove()
    assert running("/etc/gw/gateway.toml") == []


def test_clean_dead_removes_only_what_provably_dead_supervisors_left(rundir: Path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    _stale_socket(rundir / "dead.sock")
    dead_run = RunFile(dead, "/a.toml", str(rundir / "dead.sock"), 1.0).write()
    # A dead supervisor whose socket path a live one uses now: the socket stays.
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(rundir / "reused.sock"))
    listening.listen(1)
    reused_run = RunFile(dead, "/b.toml", str(rundir / "reused.sock"), 1.0).write()
    _stale_socket(rundir / "live.sock")
    live_run = RunFile(alive, "/c.toml", str(rundir / "live.sock"), 1.0).write()
    dead_dir = rundir / f"{METRICS_DIR_PREFIX}{dead}-abc"
    dead_dir.mkdir()
    (dead_dir / f"counter_{dead}.db").write_bytes(b"x" * 16)
    orphans_dir = rundir / f"{METRICS_DIR_PREFIX}{dead}-def"  # a worker still drains
    orphans_dir.mkdir()
    (orphans_dir / f"counter_{alive}.db").write_bytes(b"x" * 16)
    live_dir = rundir / f"{METRICS_DIR_PREFIX}{alive}-ghi"
    live_dir.mkdir()
    try:
        removed = clean_dead()
    finally:
        listening.close()
    assert sorted(removed) == sorted(
        [str(rundir / "dead.sock"), str(dead_run), str(reused_run), str(dead_dir)]
    )
    assert (rundir / "reused.sock").exists() and (rundir / "live.sock").exists()
    assert live_run.exists() and orphans_dir.exists() and live_dir.exists()
    assert clean_dead() == []


def test_the_identity_refuses_a_request_meant_for_another_supervisor() -> None:
    me = SupervisorIdentity(42, "/etc/gw/a.toml", "/run/gw.sock")
    assert me.mismatch(None) is None
    assert me.mismatch({"config_path": "/etc/gw/a.toml", "pid": 42}) is None
    refused = me.mismatch({"config_path": "/etc/gw/b.toml"})
    assert refused == (
        "this is the supervisor (pid 42) of /etc/gw/a.toml, not of /etc/gw/b.toml: nothing was done"
    )
    assert "not pid 7" in (me.mismatch({"config_path": "/etc/gw/a.toml", "pid": 7}) or "")
    assert "not of no config file" in (me.mismatch({"config_path": None}) or "")


def test_a_dead_supervisors_dir_kept_for_its_orphans_is_looked_at_again(rundir: Path) -> None:
    """Restarted at once, a supervisor finds the dead one's workers draining: their dir
    stays, and ``LeftoversService`` removes it once they are gone (then stops looking)."""
    from supervisor.services.leftovers import CHECK_SECONDS, LeftoversService

    dead = _dead_pid()
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kept = rundir / f"{METRICS_DIR_PREFIX}{dead}-abc"
        kept.mkdir()
        (kept / f"counter_{orphan.pid}.db").write_bytes(b"x" * 16)
        assert clean_dead() == [] and orphans_draining()
        now = [0.0]
        service = LeftoversService(clock=lambda: now[0])
        assert service.waiting
        service.tick([])
        assert kept.exists()  # not yet: every CHECK_SECONDS
        orphan.kill()
        orphan.wait()
        service.tick([])
        assert kept.exists()
        service.stopping()  # a stop looks at once
        assert not kept.exists() and not service.waiting and not orphans_draining()
        again = rundir / f"{METRICS_DIR_PREFIX}{dead}-def"  # (as if) kept once more
        again.mkdir()
        service.waiting = True
        service.tick([])
        assert again.exists()  # the next look is CHECK_SECONDS after the last one
        now[0] = CHECK_SECONDS
        service.tick([])
        assert not again.exists() and not service.waiting
    finally:
        orphan.kill()
        orphan.wait()
