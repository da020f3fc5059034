"""The supervisor ↔ worker contract (gateway_worker.contract) with real worker processes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from gateway_worker.config import Config
from gateway_worker.contract import ExitCode
from supervisor.sockets import Listener, bind
from supervisor.workers.handle import WorkerState
from supervisor.workers.process import WorkerProcess
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.integration

CANARY = "canary-secret-4f9a1c"


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = bind("127.0.0.1", 0)
    yield lst
    lst.close()


def run_to_exit(w: WorkerProcess) -> None:
    try:
        wait_until(lambda: (w.read_status(), w.poll())[1], timeout=30, what="worker exit")
    finally:
        if w.alive:
            w.kill()
            assert w.proc is not None
            w.proc.wait()
        w.close()


def test_unreachable_redis_is_a_fatal_boot_error_without_secrets(listener: Listener) -> None:
    config = Config.model_validate(
        {"redis": {"url": f"redis://127.0.0.1:{free_port()}", "default_password": CANARY}}
    )
    w = WorkerProcess(1, 0)
    w.spawn(config, [listener.fd])
    run_to_exit(w)
    assert w.returncode == ExitCode.BOOT_ERROR and w.fatal_code == ExitCode.BOOT_ERROR
    assert w.error is not None and "Redis did not answer PING" in w.error
    assert CANARY not in w.error


def test_standby_worker_becomes_ready_when_its_config_arrives(
    listener: Listener, redis_url: str
) -> None:
    w = WorkerProcess(0, -1)
    w.spawn(None, [listener.fd])
    try:
        w.send_config(Config.model_validate({"redis": {"url": redis_url}}))
        wait_until(
            lambda: (w.read_status(), w.state == WorkerState.READY)[1], timeout=30, what="ready"
        )
        assert w.last_heartbeat >= w.started_at
        w.drain(10)
    finally:
        run_to_exit(w)
    assert w.returncode == ExitCode.OK


def test_standby_worker_exits_quietly_when_the_supervisor_goes_away(listener: Listener) -> None:
    w = WorkerProcess(0, -1)
    w.spawn(None, [listener.fd])
    assert w._config_fd is not None
    os.close(w._config_fd)  # what the kernel does when the supervisor dies
    w._config_fd = None
    run_to_exit(w)
    assert w.returncode == ExitCode.ORPHANED and w.fatal_code is None  # no fatal message
