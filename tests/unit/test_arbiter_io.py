"""The arbiter's I/O pieces: listening sockets, control socket, diff/redaction, status text."""

from __future__ import annotations

import os
import select
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from gateway_worker.config import Config
from gateway_worker.control_socket import ControlError, request
from gateway_worker.observability.logging import MASK, redact_secrets
from supervisor.cli_run import format_status
from supervisor.reload.outcome import ReloadOutcome, ReloadResult
from supervisor.reload.transaction import config_diff, redacted_values
from supervisor.sockets import BindError, bind
from supervisor.triggers.control import ControlConnection, ControlServer


def test_bind_ipv4_is_inheritable_reuseaddr_and_not_reuseport() -> None:
    listener = bind("127.0.0.1", 0)
    try:
        sock = listener.sock
        assert sock.family == socket.AF_INET
        assert sock.get_inheritable()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
    finally:
        listener.close()


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 in this kernel")
def test_bind_ipv6() -> None:
    try:
        listener = bind("::1", 0)
    except BindError as exc:  # IPv6 compiled in but disabled on the host
        pytest.skip(str(exc))
    try:
        assert listener.sock.family == socket.AF_INET6
    finally:
        listener.close()


def test_bind_failure_names_the_address() -> None:
    first = bind("127.0.0.1", 0)
    port = first.sock.getsockname()[1]
    try:
        with pytest.raises(BindError, match=f"127.0.0.1:{port}"):
            bind("127.0.0.1", port)
    finally:
        first.close()


@pytest.fixture
def sockpath() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="rg-ctl-")
    yield os.path.join(d, "ctl.sock")
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


def serve_one(server: ControlServer, payload: dict[str, Any]) -> dict[str, Any]:
    """Run a client in a thread while this thread services the server like the arbiter."""
    result: dict[str, Any] = {}

    def client() -> None:
        result.update(request(server.path, payload, timeout=5))

    t = threading.Thread(target=client)
    t.start()
    while t.is_alive():
        readable, _, _ = select.select(server.fds(), [], [], 0.05)
        for fd in readable:
            server.handle_readable(fd)
    t.join()
    return result


def test_control_socket_round_trip_and_permissions(sockpath: str) -> None:
    def handler(req: Mapping[str, object], conn: ControlConnection) -> None:
        conn.reply({"ok": True, "echo": req})

    server = ControlServer(sockpath, handler)
    try:
        assert stat.S_IMODE(os.stat(sockpath).st_mode) == 0o600
        assert serve_one(server, {"cmd": "status"}) == {"ok": True, "echo": {"cmd": "status"}}
        with pytest.raises(ControlError, match="in use by another supervisor"):
            ControlServer(sockpath, handler)
    finally:
        server.close()
    assert not os.path.exists(sockpath)


def test_stale_control_socket_is_replaced(sockpath: str) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(sockpath)
    stale.close()  # the file stays, nobody listens: a supervisor that died
    server = ControlServer(sockpath, lambda req, conn: conn.reply({"ok": True}))
    try:
        assert serve_one(server, {"cmd": "x"}) == {"ok": True}
    finally:
        server.close()


def test_control_client_reports_an_unreachable_supervisor(sockpath: str) -> None:
    with pytest.raises(ControlError, match="cannot reach the supervisor"):
        request(sockpath, {"cmd": "status"}, timeout=1)


def test_redaction_masks_secret_types_and_secret_named_keys() -> None:
    event = redact_secrets(
        None,
        "info",
        {
            "event": "x",
            "password": "hunter2",
            "value": SecretStr("s3cret"),
            "nested": {"api_key": "k" * 16, "port": 6379},
            "enabled": True,
        },
    )
    assert event["password"] == MASK and event["value"] == MASK
    assert event["nested"] == {"api_key": MASK, "port": 6379}
    assert "hunter2" not in repr(event) and "s3cret" not in repr(event)


def test_diff_lists_changed_secret_paths_but_never_their_values() -> None:
    old = Config.model_validate({"redis": {"default_password": "old-password"}})
    new = Config.model_validate(
        {"redis": {"default_password": "new-password"}, "server": {"workers": 7}}
    )
    changed = config_diff(old, new)
    assert changed == ["redis.default_password", "server.workers"]
    values = redacted_values(new, changed)
    assert values == {"redis.default_password": "**********", "server.workers": 7}


def test_reload_outcome_summaries() -> None:
    ok = ReloadOutcome(ReloadResult("committed"), "SIGHUP", 3, "abc")
    assert ok.summary() == "reload committed: version 3 (hash abc)"
    bad = ReloadOutcome(
        ReloadResult("readiness_failed"), "SIGHUP", 2, "abc", error="worker 12: boom"
    )
    assert bad.summary() == "reload failed (readiness_failed): worker 12: boom"
    assert not bad.ok and ok.ok


def test_format_status_shows_workers_and_last_reload() -> None:
    text = format_status(
        {
            "pid": 10,
            "uptime_seconds": 5.0,
            "listen": ["0.0.0.0:8080"],
            "version": 2,
            "hash": "abc",
            "profile": "dev",
            "generation": 3,
            "desired_workers": 2,
            "workers": [
                {"pid": 11, "generation": 3, "state": "ready", "age_seconds": 1.5, "restarts": 1}
            ],
            "last_reload": {
                "result": "invalid",
                "finished_at": 0,
                "trigger": "SIGHUP",
                "error": "invalid configuration (1 problem(s))",
            },
        }
    )
    assert "config version 2 (hash abc), profile dev" in text
    assert "generation 3" in text and "     11    3  ready" in text
    assert "last reload: invalid" in text and "invalid configuration" in text


def test_default_control_socket_path_uses_runtime_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor.triggers.control import default_socket_path

    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert default_socket_path(8080) == str(Path("/run/user/1000/redis-gateway-8080.sock"))
