"""Issue 9 on a real supervisor: versions across restarts, drift (in_sync, pending,
rejected, restart_required) in status, `config diff` and the metric; backups without
secrets, restore through the reload pipeline with compare-and-set; history; and
`run --resume-last-good`."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.helpers import free_port, wait_until
from tests.integration.conftest import REDIS_GATEWAY, Gateway, deep_merge

pytestmark = pytest.mark.integration

Factory = Callable[..., Gateway]
CANARY = "canary-lifecycle-8e1f4a2b9c7d6053-secret"


def cli(gw: Gateway, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A `redis-gateway` command against this gateway (its config file and socket)."""
    needs_socket = args[:2] in (("config", "diff"),) or args[:3] == ("config", "backups", "restore")
    extra = ["--control-socket", gw.control_socket] if needs_socket else []
    return subprocess.run(
        [*REDIS_GATEWAY, *args, "-c", str(gw.config_path), *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def state_dir(gw: Gateway) -> Path:
    return Path(gw.config["supervisor"]["state_dir"])


def everything_written(gw: Gateway) -> str:
    """Every byte the supervisor wrote to its state directory."""
    return "".join(p.read_text(errors="replace") for p in state_dir(gw).rglob("*.json*"))


def restart(gw: Gateway) -> None:
    gw.signal(signal.SIGTERM)
    assert gw.wait_exit() == 0
    gw.start()


def test_versions_are_kept_across_restarts(gateway_factory: Factory) -> None:
    gw = gateway_factory({"server": {"workers": 1}})
    assert gw.status()["version"] == 1
    gw.write_config({"server": {"workers": 2}})
    assert gw.reload().returncode == 0
    assert gw.status()["version"] == 2
    restart(gw)
    assert gw.status()["version"] == 2  # the same config after a restart: same version
    gw.write_config({"server": {"workers": 1}})
    restart(gw)
    assert gw.status()["version"] == 3  # another config: one more, never back to 1
    listed = cli(gw, "config", "backups", "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["v3", "v2", "v1"]


def test_drift_states_diff_and_metric(gateway_factory: Factory) -> None:
    metrics_port = free_port()
    gw = gateway_factory(
        {
            "server": {"workers": 1},
            "observability": {"metrics": {"enabled": True, "port": metrics_port}},
        }
    )
    result = cli(gw, "config", "diff")
    assert (result.returncode, result.stdout.splitlines()[0]) == (0, "drift: in_sync")

    gw.write_config({"server": {"workers": 2}})  # watcher off: not reloaded
    result = cli(gw, "config", "diff")
    assert result.returncode == 1
    assert "drift: pending" in result.stdout
    assert f"server.workers:\n  running: 1  # file {gw.config_path}:" in result.stdout
    assert f"  sources: 2  # file {gw.config_path}:" in result.stdout
    assert gw.status()["drift"]["state"] == "pending"
    assert _drift_metric(metrics_port) == "pending"

    gw.write_config(raw="[server\nworkers = \n")
    result = cli(gw, "config", "diff")
    assert result.returncode == 1 and "drift: rejected" in result.stdout
    assert "invalid TOML" in result.stdout
    status = gw.status()
    assert status["drift"]["state"] == "rejected" and status["version"] == 1
    assert gw.get("/set/still/serving") == (200, {"result": "OK"})
    assert _drift_metric(metrics_port) == "rejected"

    other_socket = str(Path(gw.control_socket).with_name("other.sock"))
    gw.write_config({"server": {"workers": 1}, "supervisor": {"control_socket": other_socket}})
    assert gw.reload().returncode == 0
    status = gw.status()  # still the socket bound at start
    assert status["drift"]["state"] == "restart_required"
    assert status["drift"]["reasons"] == [
        "supervisor.control_socket: the control socket is bound once, at start"
    ]
    assert _drift_metric(metrics_port) == "restart_required"


def _drift_metric(port: int) -> str | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    on = [
        line.split('state="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("redis_gateway_config_drift{") and line.endswith(" 1.0")
    ]
    return on[0] if len(on) == 1 else None


def test_backup_restore_with_compare_and_set_and_no_secret_anywhere(
    gateway_factory: Factory, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "auth.jwt_secret").write_text(CANARY)
    (secrets / "auth.jwt_secret").chmod(0o600)
    keys = [{"name": "app", "key": CANARY + "-key", "policy": "safe"}]
    gw = gateway_factory(
        {
            "server": {"workers": 1, "request_timeout_seconds": 11.0},
            "auth": {"enabled": True, "api_keys": keys},
        },
        extra_args=("--secrets-dir", str(secrets)),
    )
    gw.write_config({"server": {"request_timeout_seconds": 12.0}})
    assert gw.reload().returncode == 0
    assert gw.status()["version"] == 2

    dry = cli(gw, "config", "backups", "restore", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "server.request_timeout_seconds:" in dry.stdout and "# backup v1" in dry.stdout
    assert gw.status()["version"] == 2  # a dry run applies nothing

    refused = cli(gw, "config", "backups", "restore", "1", "--expect-version", "1")
    assert refused.returncode == 1
    assert "the running version is 2, not 1" in refused.stderr
    assert gw.status()["version"] == 2

    done = cli(gw, "config", "backups", "restore", "1", "--expect-version", "2")
    assert done.returncode == 0, done.stderr
    assert "reload committed: version 3" in done.stdout
    status = gw.status()
    assert (status["version"], status["restored"]) == (3, "backup v1")
    assert gw.get("/get/x")[0] == 401  # the restored config keeps auth and its keys
    result = cli(gw, "config", "diff")
    assert (
        result.returncode == 1 and "running backup v1, restored over the sources" in result.stdout
    )

    shown = cli(gw, "config", "backups", "show", "1", "--format", "toml")
    assert shown.returncode == 0, shown.stderr
    assert "auth.jwt_secret" in shown.stderr and "auth.api_keys.0.key" in shown.stderr
    # Bring the files in line with the restored config: the pin is released.
    merged = deep_merge(gw.config, {"server": {"request_timeout_seconds": 11.0}})
    gw.config_path.write_text(tomli_w.dumps(merged))
    result = cli(gw, "config", "diff")
    assert (result.returncode, result.stdout.splitlines()[0]) == (0, "drift: in_sync"), (
        result.stdout
    )
    assert gw.status()["restored"] is None

    history = cli(gw, "config", "history", "--format", "json")
    entries = json.loads(history.stdout)
    assert [(e["trigger_kind"], e["result"]) for e in entries] == [
        ("start", "started"),
        ("control socket", "committed"),
        ("restore", "committed"),
    ]
    for text in (
        everything_written(gw),
        shown.stdout,
        dry.stdout,
        result.stdout,
        history.stdout,
        json.dumps(gw.status()),
    ):
        assert CANARY not in text


def test_corrupt_state_files_are_reported_and_skipped(gateway_factory: Factory) -> None:
    gw = gateway_factory({"server": {"workers": 1}})
    backups = state_dir(gw) / "backups"
    (backups / "v00000050.json").write_text('{"format": "redis-gateway-backup/1", "vers')
    (backups / "v00000051.json").write_text("not json at all")
    with (state_dir(gw) / "history.jsonl").open("a") as history_file:
        history_file.write("{half a line\n")
    restart(gw)  # never fatal
    assert gw.status()["version"] == 1
    listed = cli(gw, "config", "backups", "list")
    assert listed.returncode == 0
    assert listed.stdout.split()[0] == "v1"
    assert listed.stderr.count("skipped") == 2
    history = cli(gw, "config", "history")
    assert "not a JSON line; skipped" in history.stderr


def test_resume_last_good_starts_from_the_last_backup(gateway_factory: Factory) -> None:
    gw = gateway_factory({"server": {"workers": 1}})
    assert gw.get("/set/k/v") == (200, {"result": "OK"})
    gw.signal(signal.SIGTERM)
    assert gw.wait_exit() == 0
    good: dict[str, Any] = dict(gw.config)
    gw.write_config(raw="[server\n")
    plain = subprocess.run(
        [*REDIS_GATEWAY, "run", "-c", str(gw.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert plain.returncode == 1  # off by default: an invalid config at boot fails fast
    gw.start(extra_args=("--resume-last-good", "--state-dir", str(state_dir(gw))))
    status = gw.status()
    assert status["drift"]["state"] == "rejected" and status["restored"] == "backup v1"
    assert gw.get("/get/k") == (200, {"result": "v"})
    gw.config_path.write_text(tomli_w.dumps(good))  # the files are fixed
    assert gw.reload().returncode == 0
    status = wait_until(
        lambda: (s := gw.status())["restored"] is None and s, timeout=20, what="the sources applied"
    )
    assert status["drift"]["state"] == "in_sync"


ADMIN_KEY = "admin-key-lifecycle-0123456789"


def _admin(
    gw: Gateway,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"X-API-Key": ADMIN_KEY, **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(raw or b"null")


def test_admin_config_etag_plan_and_if_match_reload(gateway_factory: Factory) -> None:
    keys = [{"name": "ops", "key": ADMIN_KEY, "admin": True}]
    gw = gateway_factory(
        {
            "server": {"workers": 1},
            "auth": {"enabled": True, "api_keys": keys},
            "features": {"admin_endpoints": True},
        }
    )
    running = gw.status()["hash"]
    status, headers, body = _admin(gw, "GET", "/admin/config")
    assert status == 200 and headers["etag"] == f'"{running}"' and body["hash"] == running
    assert "sources" not in body
    assert _admin(gw, "GET", "/admin/config", headers={"If-None-Match": f'"{running}"'})[0] == 304
    _, _, with_sources = _admin(gw, "GET", "/admin/config?sources=1")
    workers = with_sources["sources"]["server.workers"]
    assert workers["value"] == 1 and workers["source"].startswith(f"file {gw.config_path}:")
    assert ADMIN_KEY not in json.dumps(with_sources)

    candidate = tomli_w.dumps(deep_merge(gw.config, {"server": {"workers": 2}})).encode()
    status, _, plan = _admin(
        gw, "POST", "/admin/config/plan", candidate, headers={"Content-Type": "application/toml"}
    )
    assert status == 200 and plan["valid"] is True
    assert [r["key"] for r in plan["rows"]] == ["server.workers"]
    broken = b"[server]\nworkers = 0\n"
    status, _, plan = _admin(
        gw, "POST", "/admin/config/plan", broken, headers={"Content-Type": "application/toml"}
    )
    assert status == 422 and plan["valid"] is False
    assert any(p.startswith("server.workers:") and "candidate" in p for p in plan["problems"])
    status, _, refused = _admin(
        gw, "POST", "/admin/config/plan", b"x", headers={"Content-Type": "text/plain"}
    )
    assert status == 415 and "application/toml" in refused["error"]
    assert gw.status()["hash"] == running  # a plan applies nothing

    gw.write_config({"server": {"workers": 2}})
    status, headers, body = _admin(gw, "POST", "/admin/reload", headers={"If-Match": '"not-it"'})
    assert status == 412 and headers["etag"] == f'"{running}"'
    assert gw.status()["version"] == 1
    status, _, body = _admin(gw, "POST", "/admin/reload", headers={"If-Match": f'"{running}"'})
    assert status == 200 and body["reload"]["result"] == "committed"
    entries = json.loads(cli(gw, "config", "history", "--format", "json").stdout)
    assert entries[-1]["trigger_kind"] == "admin API"
