"""``ExposureWarning``: auth off beyond loopback is said once, loudly, at start and after
a reload that makes it so (issue 8, item 4)."""

from __future__ import annotations

import io
import socket
from typing import Any

import pytest
import structlog.testing

from gateway_worker.config import Config
from supervisor.config import LoadedConfig
from supervisor.services.exposure import ExposureWarning, is_loopback
from supervisor.sockets import Listener


def _config(host: str, auth: bool = False) -> Config:
    data: dict[str, Any] = {"server": {"host": host, "port": 8080}}
    if auth:
        data["auth"] = {"enabled": True, "api_keys": [{"name": "ops", "key": "k" * 32}]}
    return Config.model_validate(data)


def _loaded(config: Config) -> LoadedConfig:
    return LoadedConfig(config, {}, "h", ())


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("no-such-host.invalid", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_warns_once_at_start_and_again_only_when_a_reload_makes_it_so() -> None:
    stderr = io.StringIO()
    exposure = ExposureWarning([], stderr)
    with structlog.testing.capture_logs() as logs:
        exposure.check(_config("0.0.0.0"))  # start
        exposure.committed(_loaded(_config("0.0.0.0")), 2)  # still so: said already
    assert [e["event"] for e in logs] == ["security.unauthenticated"]
    assert logs[0]["log_level"] == "warning" and logs[0]["listen"] == ["0.0.0.0:8080"]
    assert stderr.getvalue().count("\n") == 1
    assert "WARNING: authentication is off" in stderr.getvalue()
    assert "0.0.0.0:8080" in stderr.getvalue()
    with structlog.testing.capture_logs() as logs:
        exposure.committed(_loaded(_config("0.0.0.0", auth=True)), 3)  # fixed
        exposure.committed(_loaded(_config("127.0.0.1")), 4)  # auth off, loopback: fine
        exposure.committed(_loaded(_config("::")), 5)  # exposed again
    assert [e["event"] for e in logs] == ["security.unauthenticated"]
    assert stderr.getvalue().count("\n") == 2


def test_loopback_or_auth_on_never_warns() -> None:
    stderr = io.StringIO()
    exposure = ExposureWarning([], stderr)
    with structlog.testing.capture_logs() as logs:
        exposure.check(_config("127.0.0.1"))
        exposure.committed(_loaded(_config("0.0.0.0", auth=True)), 2)
    assert logs == [] and stderr.getvalue() == ""


def test_sockets_from_systemd_are_judged_by_their_own_address() -> None:
    sock = socket.socket()
    try:
        exposed = ExposureWarning([Listener(sock, "0.0.0.0", 80, from_systemd=True)], io.StringIO())
        with structlog.testing.capture_logs() as logs:
            exposed.check(_config("127.0.0.1"))  # server.host does not rebind it
        assert [e["listen"] for e in logs] == [["0.0.0.0:80"]]
        private = ExposureWarning(
            [Listener(sock, "127.0.0.1", 80, from_systemd=True)], io.StringIO()
        )
        with structlog.testing.capture_logs() as logs:
            private.check(_config("0.0.0.0"))
        assert logs == []
    finally:
        sock.close()
