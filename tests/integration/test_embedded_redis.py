"""The dev profile's embedded Redis, supervised like a worker (issue 13 §2): its own
process group (a terminal's Ctrl+C drains the workers before it stops), restarted with
backoff when it dies (logged, in `status`), and gone when the supervisor is SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway_worker.control_socket import request
from tests.helpers import free_port, wait_until
from tests.integration.conftest import REDIS_GATEWAY, http_get, pid_alive

pytestmark = pytest.mark.integration


@dataclass
class DevGateway:
    proc: subprocess.Popen[bytes]
    port: int
    socket: str
    log: Path

    def status(self) -> dict[str, object]:
        reply = request(self.socket, {"cmd": "status"}, 5.0)
        status = reply["status"]
        assert isinstance(status, dict)
        return status

    def embedded(self) -> dict[str, object]:
        embedded = self.status()["embedded_redis"]
        assert isinstance(embedded, dict), embedded
        return embedded

    def events(self, name: str) -> list[dict[str, object]]:
        lines = self.log.read_text().splitlines()
        events = [json.loads(line) for line in lines if line.startswith("{")]
        return [e for e in events if e.get("event") == name]


@pytest.fixture
def dev_gateway(tmp_path: Path) -> Iterator[DevGateway]:
    """`run --profile dev` (embedded Redis) in a session of its own, like a terminal's
    foreground job: the test signals its whole process group."""
    port, sock, log = free_port(), str(tmp_path / "ctl.sock"), tmp_path / "log.jsonl"
    settings = {
        "server.port": port,
        "server.workers": 1,
        "server.graceful_shutdown_timeout_seconds": 10,
        "observability.metrics.enabled": "false",
        "observability.logging.format": "json",
        "supervisor.control_socket": sock,
        "supervisor.watch_config": "false",
        "supervisor.restart_backoff_max_seconds": 1,
    }
    args = [f"--set={key}={value}" for key, value in settings.items()]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*REDIS_GATEWAY, "run", "--profile", "dev", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            start_new_session=True,
        )
    gw = DevGateway(proc, port, sock, log)
    try:
        wait_until(lambda: http_get(port, "/ping")[0] == 200, timeout=20, what="dev gateway")
        yield gw
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_killed_embedded_redis_is_logged_restarted_and_reported(dev_gateway: DevGateway) -> None:
    first = dev_gateway.embedded()
    assert (first["state"], first["restarts"]) == ("running", 0)
    assert isinstance(first["pid"], int)
    os.kill(first["pid"], signal.SIGKILL)
    wait_until(lambda: dev_gateway.events("embedded_redis.exited"), what="exit logged")
    exited = dev_gateway.events("embedded_redis.exited")[0]
    assert exited["reason"] == "exited with signal SIGKILL"
    assert exited["level"] == "error"
    again = wait_until(
        lambda: (e := dev_gateway.embedded())["state"] == "running" and e["restarts"] == 1 and e,
        what="embedded Redis restarted",
    )
    assert again["pid"] != first["pid"]
    assert again["last_exit"] == "exited with signal SIGKILL"
    assert again["url"] == first["url"]  # same port: the workers reconnect by themselves
    wait_until(lambda: http_get(dev_gateway.port, "/set/k/v")[0] == 200, what="serving again")
    assert dev_gateway.events("embedded_redis.restarted")
    # Every line names its writer: the supervisor's own, a worker's with its slot and
    # generation, never a worker's pid as the supervisor's.
    ready = dev_gateway.events("worker.ready")[0]
    assert (ready["process"], ready["generation"], ready["slot"]) == ("worker", 1, 0)
    supervisor_pid = dev_gateway.proc.pid
    assert {e["pid"] for e in dev_gateway.events("worker.spawned")} <= {supervisor_pid}
    assert exited["process"] == "supervisor" and exited["pid"] == supervisor_pid


def test_the_embedded_redis_dies_with_a_sigkilled_supervisor(dev_gateway: DevGateway) -> None:
    redis_pid = dev_gateway.embedded()["pid"]
    assert isinstance(redis_pid, int)
    dev_gateway.proc.kill()
    dev_gateway.proc.wait()
    wait_until(lambda: not pid_alive(redis_pid), timeout=5, what="no orphaned Redis")


def test_ctrl_c_drains_the_workers_before_the_embedded_redis_stops(
    dev_gateway: DevGateway,
) -> None:
    """A terminal's Ctrl+C signals the whole foreground process group: the request in
    flight (BLPOP waiting 1.5 s) must still be answered by Redis, not fail."""
    redis_pid = dev_gateway.embedded()["pid"]
    assert isinstance(redis_pid, int)
    assert os.getpgid(redis_pid) != os.getpgid(dev_gateway.proc.pid)
    result: list[tuple[int, object]] = []
    slow = threading.Thread(
        target=lambda: result.append(http_get(dev_gateway.port, "/blpop/nothing/1.5"))
    )
    slow.start()
    wait_until(lambda: _blocked_clients(dev_gateway.port) >= 1, what="BLPOP blocking")
    os.killpg(dev_gateway.proc.pid, signal.SIGINT)
    slow.join(10)
    assert result == [(200, {"result": None})]
    assert dev_gateway.proc.wait(15) == 0
    assert not pid_alive(redis_pid)
    assert dev_gateway.events("embedded_redis.stopped")


def _blocked_clients(port: int) -> int:
    status, body = http_get(port, "/info/clients")
    assert status == 200, body
    assert isinstance(body, dict)
    text = str(body["result"])
    for line in text.splitlines():
        if line.startswith("blocked_clients:"):
            return int(line.split(":", 1)[1])
    return 0
