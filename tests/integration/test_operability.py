"""Operability end to end, on a real `redis-gateway run`: sd_notify, socket activation,
config file and ConfigMap watching, and the aggregated metrics endpoint."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import tomli_w
from prometheus_client.parser import text_string_to_metric_families

from gateway_worker.control_socket import request
from tests.helpers import free_port, wait_until
from tests.integration.conftest import Gateway, base_config, deep_merge, http_get

pytestmark = pytest.mark.integration

REDIS_GATEWAY = str(Path(sys.executable).parent / "redis-gateway")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="rg-op-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class NotifyListener:
    """The systemd side of sd_notify: a datagram socket read by a thread (as systemd
    reads promptly; an unread socket would make the supervisor drop notifications)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[dict[str, str]] = []
        self._matched = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                raw = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.messages.append(dict(line.split("=", 1) for line in raw.split("\n") if line))

    def wait_for(self, predicate: Callable[[dict[str, str]], bool], what: str) -> dict[str, str]:
        """Next message (after the last one matched) satisfying ``predicate``."""

        def find() -> dict[str, str] | None:
            for index in range(self._matched, len(self.messages)):
                if predicate(self.messages[index]):
                    self._matched = index + 1
                    return self.messages[index]
            return None

        return wait_until(find, timeout=20, what=f"sd_notify {what} in {self.messages}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def test_sd_notify_ready_reloading_watchdog_stopping(
    gateway_factory: Callable[..., Gateway], monkeypatch: pytest.MonkeyPatch, short_dir: Path
) -> None:
    listener = NotifyListener(short_dir / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(short_dir / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    try:
        gw = gateway_factory({"server": {"workers": 1}})
        ready = listener.wait_for(lambda m: m.get("READY") == "1", "READY=1")
        assert "generation 1" in ready["STATUS"]
        listener.wait_for(lambda m: m.get("WATCHDOG") == "1", "WATCHDOG=1")

        gw.write_config({"server": {"workers": 1, "request_timeout_seconds": 7}})
        before_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert gw.reload().returncode == 0
        reloading = listener.wait_for(lambda m: m.get("RELOADING") == "1", "RELOADING=1")
        # Same datagram, and a CLOCK_MONOTONIC timestamp taken during the reload.
        assert int(reloading["MONOTONIC_USEC"]) >= before_us
        done = listener.wait_for(lambda m: m.get("READY") == "1", "READY=1 after the reload")
        assert "generation 2" in done["STATUS"]

        gw.signal(signal.SIGTERM)
        listener.wait_for(lambda m: m.get("STOPPING") == "1", "STOPPING=1")
        assert gw.wait_exit() == 0
    finally:
        listener.close()


# Plays systemd between fork and exec: the listening socket becomes fd 3, LISTEN_PID is
# the pid that exec keeps, then the real supervisor starts.
ACTIVATE = (
    "import os, sys\n"
    "fd = int(sys.argv[1])\n"
    "if fd != 3:\n"
    "    os.dup2(fd, 3)\n"
    "    os.close(fd)\n"
    "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES='http')\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def test_socket_activation_serves_on_the_socket_systemd_passed(
    redis_url: str, short_dir: Path
) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    activated_port = listener.getsockname()[1]
    config = deep_merge(base_config(redis_url, short_dir), {"server": {"workers": 1}})
    config_port = config["server"]["port"]  # must NOT be bound: systemd's socket wins
    config_path = short_dir / "gateway.toml"
    config_path.write_text(tomli_w.dumps(config))
    log = (short_dir / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ACTIVATE,
            str(listener.fileno()),
            REDIS_GATEWAY,
            "run",
            "--config",
            str(config_path),
        ],
        pass_fds=[listener.fileno()],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    listener.close()  # only the supervisor holds it now, as with systemd
    try:

        def serving() -> bool:
            assert proc.poll() is None, (short_dir / "gateway.log").read_text()
            status = request(config["supervisor"]["control_socket"], {"cmd": "status"}, 5.0)
            workers = status["status"]["workers"]
            return bool(workers) and all(w["state"] == "ready" for w in workers)

        wait_until(serving, timeout=20, what="socket-activated gateway ready")
        assert http_get(activated_port, "/healthz")[0] == 200
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", config_port), timeout=2).close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        _kill_tree(proc)
        log.close()


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for child in children:
        try:
            child.kill()
            child.wait(5)
        except psutil.NoSuchProcess:
            pass


WATCHING = {
    "server": {"workers": 1},
    "supervisor": {
        "watch_config": True,
        "watch_debounce_ms": 100,
        "recheck_interval_seconds": 0,
    },
}
# After a reload was seen, how long we keep checking that no second one follows.
QUIET_WINDOW = 1.0


def _assert_no_more_reloads(gw: Gateway, reloads: dict[str, int]) -> None:
    deadline = time.monotonic() + QUIET_WINDOW
    while time.monotonic() < deadline:
        assert gw.status()["reloads"] == reloads
        time.sleep(0.05)


def _atomic_save(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_saving_the_config_file_reloads_once_and_touch_does_not(
    gateway_factory: Callable[..., Gateway],
) -> None:
    gw = gateway_factory(WATCHING)
    changed = deep_merge(gw.config, {"observability": {"logging": {"level": "WARNING"}}})
    _atomic_save(gw.config_path, tomli_w.dumps(changed))
    wait_until(lambda: gw.status()["version"] == 2, timeout=20, what="reload after the save")
    status = gw.status()
    assert status["last_reload"]["trigger"].startswith("watch")
    assert status["last_reload"]["changed"] == ["observability.logging.level"]
    _assert_no_more_reloads(gw, status["reloads"])

    gw.config_path.touch()
    gw.config_path.write_text(gw.config_path.read_text())  # same bytes, in place
    _assert_no_more_reloads(gw, status["reloads"])
    assert gw.status()["version"] == 2


def _kubelet_publish(mount: Path, data: dict[str, str], stamp: str) -> None:
    """kubelet's AtomicWriter: new `..<timestamp>` dir, `..data_tmp` renamed over `..data`."""
    ts_dir = mount / f"..{stamp}"
    ts_dir.mkdir()
    for key, value in data.items():
        (ts_dir / key).write_text(value)
    (mount / "..data_tmp").symlink_to(ts_dir.name)
    os.rename(mount / "..data_tmp", mount / "..data")
    for key in data:
        if not (mount / key).is_symlink():
            (mount / key).symlink_to(Path("..data") / key)


def test_configmap_data_swap_reloads_once(
    gateway_factory: Callable[..., Gateway], tmp_path: Path
) -> None:
    mount = tmp_path / "configmap"
    mount.mkdir()
    key = "server.request_timeout_seconds"
    _kubelet_publish(mount, {key: "10"}, "2026_11_26_07_00_00.000000001")
    gw = gateway_factory(WATCHING, extra_args=("--configmap-dir", str(mount)))
    _kubelet_publish(mount, {key: "11"}, "2026_11_26_07_01_00.000000002")
    wait_until(lambda: gw.status()["version"] == 2, timeout=20, what="reload after the swap")
    status = gw.status()
    assert status["last_reload"]["changed"] == [key]
    _assert_no_more_reloads(gw, status["reloads"])


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _total(samples: dict[tuple[str, Any], float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def test_metrics_endpoint_covers_supervisor_and_workers_across_a_reload(
    gateway_factory: Callable[..., Gateway],
) -> None:
    metrics_port = free_port()
    gw = gateway_factory({"observability": {"metrics": {"enabled": True, "port": metrics_port}}})
    for _ in range(20):
        assert gw.get("/incr/metrics-test")[0] == 200

    def scraped() -> dict[tuple[str, Any], float] | None:
        samples = _scrape(metrics_port)
        # Workers flush their request counters about once a second.
        return samples if _total(samples, "redis_gateway_requests_total") >= 20 else None

    samples = wait_until(scraped, timeout=10, what="worker request metrics")
    assert samples[("redis_gateway_workers", (("state", "ready"),))] == 2
    assert samples[("redis_gateway_config_version", ())] == 1
    assert samples[("redis_gateway_last_reload_successful", ())] == 1

    gw.write_config({"server": {"request_timeout_seconds": 9}})
    assert gw.reload().returncode == 0
    wait_until(
        lambda: len(gw.worker_pids()) == 2 and not gw.worker_pids("draining"),
        timeout=20,
        what="old generation gone",
    )
    samples = _scrape(metrics_port)
    assert samples[("redis_gateway_reloads_total", (("result", "committed"),))] == 1
    assert samples[("redis_gateway_config_version", ())] == 2
    # The old generation's workers exited; their requests still count.
    assert _total(samples, "redis_gateway_requests_total") >= 20
