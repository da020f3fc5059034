"""The shipped systemd units: `systemd-analyze verify` is silent, and key settings hold.

The unit is also run for real, by hand (root, a booted Debian 12 container):
`scripts/systemd-nspawn-check` installs it as systemd/README.md says, starts it,
reloads it under load, refuses a broken config and stops it."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway_worker.config import ServerConfig

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
SHIPPED_BINARY = "/opt/redis-gateway/bin/redis-gateway"
DROP_IN = UNITS / "redis-gateway.service.d" / "credentials.conf"
CREDENTIALS = "/run/credentials/redis-gateway.service"


def parse_unit(path: Path) -> configparser.RawConfigParser:
    # strict=False: systemd allows repeated keys (SystemCallFilter=) which accumulate.
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


def seconds(value: str) -> float:
    value = value.strip()
    if value.endswith("min"):
        return float(value[:-3]) * 60
    return float(value.removesuffix("s"))


def test_service_settings_match_the_supervisor_contract() -> None:
    service = parse_unit(UNITS / "redis-gateway.service")["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["KillMode"] == "mixed"
    assert service["KillSignal"] == "SIGTERM"
    assert service["ExecStart"].startswith(f"{SHIPPED_BINARY} run ")
    assert "--profile prod" in service["ExecStart"]
    # ExecReload must wait for the outcome (not a bare kill -HUP).
    assert service["ExecReload"].startswith(f"{SHIPPED_BINARY} reload ")
    reload_timeout = float(service["ExecReload"].split("--timeout", 1)[1].split()[0])
    assert seconds(service["TimeoutStartSec"]) > reload_timeout
    assert seconds(service["TimeoutStopSec"]) > ServerConfig().graceful_shutdown_timeout_seconds
    assert seconds(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert service["RuntimeDirectory"] == "redis-gateway"
    control_socket = service["Environment"].split("CONTROL_SOCKET=", 1)[1].split()[0]
    assert control_socket.startswith("/run/redis-gateway/")
    # Reload must find the supervisor even when the edited config is invalid.
    assert f"--control-socket {control_socket}" in service["ExecReload"]
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "RestrictSUIDSGID"):
        assert service[hardening] == "yes", hardening
    assert service["ProtectSystem"] == "strict"


def test_secrets_come_as_credentials_read_by_file_keys() -> None:
    service = parse_unit(UNITS / "redis-gateway.service")["Service"]
    # Optional (the leading '-'): REDIS_GATEWAY_* settings only the supervisor sees.
    assert service["EnvironmentFile"] == "-/etc/redis-gateway/environment"
    text = DROP_IN.read_text()
    drop_in = parse_unit(DROP_IN)["Service"]
    loaded = [
        line.split("=", 1)[1] for line in text.splitlines() if line.startswith("LoadCredential=")
    ]
    assert loaded == [
        "jwt_secret:/etc/redis-gateway/credentials/jwt_secret",
        "api_key.app:/etc/redis-gateway/credentials/api_key.app",
    ]
    assert drop_in["Environment"] == "REDIS_GATEWAY_AUTH__JWT_SECRET_FILE=%d/jwt_secret"
    guide = (UNITS / "README.md").read_text()
    assert f'key_file = "{CREDENTIALS}/api_key.app"' in guide
    for step in (
        "python3 -m venv /opt/redis-gateway",
        "/opt/redis-gateway/bin/pip install .",
        "useradd --system",
        "cp systemd/redis-gateway.service.d/credentials.conf "
        "/etc/systemd/system/redis-gateway.service.d/",
    ):
        assert step in guide, step


def test_socket_unit_feeds_the_service() -> None:
    socket_unit = parse_unit(UNITS / "redis-gateway.socket")["Socket"]
    assert socket_unit["ListenStream"] == "8080"
    assert socket_unit["Service"] == "redis-gateway.service"
    assert socket_unit.get("ReusePort", "false") == "false"


def _verify(directory: Path, *units: str) -> str:
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # It exits 0 even on an unknown Type=, so what it prints is the verdict.
    return (result.stdout + result.stderr).strip()


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    # verify insists that ExecStart's binary exists: point the copies at this venv's.
    binary = Path(sys.executable).with_name("redis-gateway")
    assert binary.exists(), f"{binary} missing: install the project into the venv"
    for name in ("redis-gateway.service", "redis-gateway.socket"):
        text = (UNITS / name).read_text().replace(SHIPPED_BINARY, str(binary))
        (tmp_path / name).write_text(text)
    output = _verify(tmp_path, "redis-gateway.service", "redis-gateway.socket")
    assert output == "", output
    # With the credentials drop-in merged in (verify reads no drop-in beside a path).
    merged = (tmp_path / "redis-gateway.service").read_text() + DROP_IN.read_text()
    (tmp_path / "redis-gateway.service").write_text(merged)
    output = _verify(tmp_path, "redis-gateway.service")
    assert output == "", output


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_systemd_analyze_reports_a_broken_unit(tmp_path: Path) -> None:
    """Control: the silence above means something, because a typo is reported."""
    text = (UNITS / "redis-gateway.service").read_text()
    binary = Path(sys.executable).with_name("redis-gateway")
    text = text.replace(SHIPPED_BINARY, str(binary)).replace("Type=notify", "Type=notify-relaod")
    (tmp_path / "redis-gateway.service").write_text(text)
    output = _verify(tmp_path, "redis-gateway.service")
    assert "notify-relaod" in output
