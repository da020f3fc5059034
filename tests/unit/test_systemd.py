"""sd_notify over a real datagram socket; socket activation with a real socket as fd 3."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.systemd import Notifier, SystemdError, listen_fd_names, listen_fds


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def receive(sock: socket.socket) -> dict[str, str]:
    datagram = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in datagram.split("\n"))


def test_ready_sends_ready_and_status(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    notifier.ready("serving: generation 1\n4 workers")
    assert receive(sock) == {"READY": "1", "STATUS": "serving: generation 1 4 workers"}
    notifier.close()


def test_reloading_sends_monotonic_usec_in_the_same_datagram(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    fields = receive(sock)
    assert fields.keys() == {"RELOADING", "MONOTONIC_USEC"}
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= after
    notifier.close()


def test_stopping_status_mainpid_watchdog(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    notifier.stopping()
    assert receive(sock) == {"STOPPING": "1"}
    notifier.status("draining generation 3")
    assert receive(sock) == {"STATUS": "draining generation 3"}
    notifier.mainpid(4242)
    assert receive(sock) == {"MAINPID": "4242"}
    notifier.watchdog()
    assert receive(sock) == {"WATCHDOG": "1"}
    notifier.close()


def test_abstract_socket_address() -> None:
    name = f"redis-gateway-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        notifier.ready("up")
        assert receive(sock)["READY"] == "1"
        notifier.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    notifier.ready("up")
    notifier.reloading()
    notifier.watchdog()
    assert notifier.watchdog_interval() is None


def test_unreachable_notify_socket_does_not_raise(tmp_path: Path) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    notifier.ready("up")  # logged, not raised
    notifier.close()


def test_full_receive_queue_drops_instead_of_blocking(
    notify_socket: tuple[socket.socket, str],
) -> None:
    _, path = notify_socket  # never read: the kernel queue fills up
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    started = time.monotonic()
    for i in range(500):
        notifier.status(f"message {i}")
    assert time.monotonic() - started < 5
    notifier.close()


def test_watchdog_pings_are_throttled(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "60000000"})
    for _ in range(100):  # a busy main loop calling it on every iteration
        notifier.watchdog()
    notifier.status("marker")
    assert receive(sock) == {"WATCHDOG": "1"}
    assert receive(sock) == {"STATUS": "marker"}
    notifier.close()


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_env(env).watchdog_interval() == 15.0
    assert Notifier.from_env({"WATCHDOG_USEC": "2000000"}).watchdog_interval() == 1.0


def test_watchdog_for_another_pid_is_ignored() -> None:
    env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier.from_env(env).watchdog_interval() is None


def test_listen_fds_for_another_pid_returns_nothing_and_clears_env() -> None:
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "http"}
    assert listen_fds(env) == []
    assert env == {}


def test_listen_fds_rejects_garbage() -> None:
    with pytest.raises(SystemdError, match="LISTEN_FDS='two'"):
        listen_fds({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "two"})


def test_listen_fds_unset_returns_nothing() -> None:
    assert listen_fds({}) == []


def test_listen_fd_names_pads_missing_names() -> None:
    assert listen_fd_names("http:metrics", 2) == ["http", "metrics"]
    assert listen_fd_names(None, 2) == ["unknown", "unknown"]


# The child plays the activated service: it receives the socket as fd 3 with
# LISTEN_PID set to its own pid (as systemd does between fork and exec).
CHILD = textwrap.dedent(
    """
    import json, os, socket, sys
    inherited = int(sys.argv[1])
    if inherited != 3:
        os.dup2(inherited, 3)
        os.close(inherited)
    os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="http")
    from supervisor.systemd import listen_fds
    socks = listen_fds()
    s = socks[0]
    print(json.dumps({
        "count": len(socks),
        "family": int(s.family),
        "type": int(s.type),
        "fileno": s.fileno(),
        "inheritable": s.get_inheritable(),
        "env_left": [k for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES") if k in os.environ],
    }), flush=True)
    conn, _ = s.accept()
    conn.sendall(b"hello from fd 3")
    conn.close()
    """
)


def test_socket_activation_with_a_real_socket_as_fd_3() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(listener.fileno())],
        pass_fds=[listener.fileno()],
        stdout=subprocess.PIPE,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    listener.close()  # only the child holds the socket now
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info == {
            "count": 1,
            "family": int(socket.AF_INET),
            "type": int(socket.SOCK_STREAM),
            "fileno": 3,
            "inheritable": False,
            "env_left": [],
        }
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            assert client.recv(100) == b"hello from fd 3"
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
