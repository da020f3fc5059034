"""`reload`/`status -c FILE` reach the supervisor of FILE, even while FILE is invalid,
and never another one (issue 8, item 5). Two real supervisors share one
$XDG_RUNTIME_DIR; B's control socket has the default name there, which is what the
old "the one socket in the default directory" fallback picked."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.integration.conftest import REDIS_GATEWAY, Gateway


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rg-xdg-"))  # short: AF_UNIX path limit
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _cli(runtime_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}
    env.pop("REDIS_GATEWAY_CONFIG", None)
    return subprocess.run(
        [*REDIS_GATEWAY, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def _two(gateway_factory: Callable[..., Gateway], runtime_dir: Path) -> tuple[Gateway, Gateway]:
    env = {"XDG_RUNTIME_DIR": str(runtime_dir)}
    port = free_port()
    default_named = str(runtime_dir / f"redis-gateway-{port}.sock")
    b = gateway_factory(
        {"server": {"port": port, "workers": 1}, "supervisor": {"control_socket": default_named}},
        env=env,
    )
    a = gateway_factory({"server": {"workers": 1}}, env=env)
    return a, b


def test_reload_c_reaches_the_supervisor_of_that_file_even_when_it_is_broken(
    gateway_factory: Callable[..., Gateway], runtime_dir: Path
) -> None:
    a, b = _two(gateway_factory, runtime_dir)
    assert a.proc is not None and b.proc is not None
    a.write_config(raw="[server\nworkers = ")  # not even TOML
    result = _cli(runtime_dir, "reload", "-c", str(a.config_path), "--timeout", "30")
    assert result.returncode == 1, result
    assert result.stdout.startswith("reload failed (invalid)"), result.stdout
    assert f"supervisor pid {a.proc.pid}, {a.config_path}" in result.stdout
    assert a.status()["last_reload"]["result"] == "invalid"
    assert b.status()["last_reload"] is None  # the other supervisor was left alone
    # Its status is found the same way (the run file), file still broken.
    status = _cli(runtime_dir, "status", "-c", str(a.config_path))
    assert status.returncode == 0, status
    assert f"supervisor pid {a.proc.pid} ({a.config_path})" in status.stdout

    b.write_config({"server": {"workers": 2}})
    result = _cli(runtime_dir, "reload", "-c", str(b.config_path), "--timeout", "30")
    assert result.returncode == 0, result
    assert result.stdout.startswith("reload committed: version 2")
    assert f"supervisor pid {b.proc.pid}, {b.config_path}" in result.stdout
    assert (a.status()["version"], b.status()["version"]) == (1, 2)


def test_reload_refuses_a_socket_of_another_supervisor_and_run_only_options(
    gateway_factory: Callable[..., Gateway], runtime_dir: Path
) -> None:
    a, b = _two(gateway_factory, runtime_dir)
    assert b.proc is not None
    b.write_config({"server": {"workers": 2}})  # a reload of B would commit
    result = _cli(
        runtime_dir, "reload", "-c", str(a.config_path), "--control-socket", b.control_socket
    )
    assert result.returncode == 1, result
    assert f"(pid {b.proc.pid}) of {b.config_path}, not of {a.config_path}" in result.stderr
    assert "nothing was done" in result.stderr
    assert b.status()["reloads"] == {}  # refused before anything happened

    for command in ("reload", "status"):
        refused = _cli(runtime_dir, command, "-c", str(a.config_path), "--set", "server.workers=3")
        assert refused.returncode == 2, refused
        assert "--set" in refused.stderr and "running supervisor" in refused.stderr
    assert (a.status()["reloads"], a.status()["desired_workers"]) == ({}, 1)


def test_no_supervisor_of_an_invalid_file_is_an_error_not_a_guess(
    gateway_factory: Callable[..., Gateway], runtime_dir: Path, tmp_path: Path
) -> None:
    _, b = _two(gateway_factory, runtime_dir)
    other = tmp_path / "other.toml"
    other.write_text("[server\n")
    result = _cli(runtime_dir, "reload", "-c", str(other))
    assert result.returncode == 1, result
    assert f"no supervisor of config {other} has a run file in {runtime_dir}" in result.stderr
    assert "pass --control-socket" in result.stderr
    assert b.status()["reloads"] == {}
