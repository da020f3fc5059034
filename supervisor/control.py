"""The local control socket behind `redis-gateway reload|status` and POST /admin/reload.

Protocol: a Unix stream socket (mode 0600, so only the service user may use it).
The client sends ONE newline-terminated JSON object and reads ONE JSON line back:

    {"cmd": "status"}  ->  {"ok": true, "status": {...}}
    {"cmd": "reload"}  ->  {"ok": true|false, "reload": {...ReloadOutcome...}}
                           sent only once the reload finished (or was coalesced into
                           one that did)
    anything else      ->  {"ok": false, "error": "..."}

The server side is non-blocking and lives in the arbiter's main loop (no thread).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from gateway_worker.errors import GatewayError

log = structlog.get_logger("redis_gateway.control")

MAX_REQUEST_BYTES = 65536


class ControlError(GatewayError):
    """The control socket cannot be reached or answered garbage."""


def default_socket_path(port: int) -> str:
    """$XDG_RUNTIME_DIR (or the temp dir)/redis-gateway-<port>.sock."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return str(Path(base) / f"redis-gateway-{port}.sock")


class ControlConnection:
    """One client; ``reply`` sends the answer and closes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def reply(self, payload: dict[str, Any]) -> None:
        if self.closed:
            return
        data = json.dumps(payload, separators=(",", ":"), default=str).encode() + b"\n"
        try:
            # Replies are small; a short blocking send is simpler than buffering.
            self.sock.settimeout(1.0)
            self.sock.sendall(data)
        except OSError:
            pass  # the client gave up waiting; nothing to do
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


Handler = Callable[[dict[str, Any], ControlConnection], None]


class ControlServer:
    """Accepts control connections; hands each parsed request to ``handler``."""

    def __init__(self, path: str, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self.connections: list[ControlConnection] = []
        self.sock = self._bind(path)

    @staticmethod
    def _bind(path: str) -> socket.socket:
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # stale socket of a supervisor that died
            else:
                raise ControlError(f"control socket {path} is in use by another supervisor")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # created 0600: no window with wider permissions
        try:
            sock.bind(path)
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot bind control socket {path}: {exc}") from exc
        finally:
            os.umask(old_umask)
        sock.listen(64)
        sock.setblocking(False)
        return sock

    def fds(self) -> list[int]:
        return [self.sock.fileno()] + [c.fileno() for c in self.connections if not c.closed]

    def handle_readable(self, fd: int) -> None:
        """Service one readable fd (the listener or a connection)."""
        if fd == self.sock.fileno():
            while True:
                try:
                    client, _ = self.sock.accept()
                except OSError:  # BlockingIOError: nothing left to accept
                    break
                client.setblocking(False)
                self.connections.append(ControlConnection(client))
            return
        for conn in self.connections:
            if not conn.closed and conn.fileno() == fd:
                self._read(conn)
        self.connections = [c for c in self.connections if not c.closed]

    def _read(self, conn: ControlConnection) -> None:
        try:
            data = conn.sock.recv(MAX_REQUEST_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            conn.close()
            return
        conn.buffer += data
        if b"\n" not in conn.buffer:
            if len(conn.buffer) > MAX_REQUEST_BYTES:
                conn.reply({"ok": False, "error": "request too long"})
            return
        line = conn.buffer.split(b"\n", 1)[0]
        try:
            request = json.loads(line)
        except ValueError as exc:
            conn.reply({"ok": False, "error": f"bad request: {exc}"})
            return
        if not isinstance(request, dict):
            conn.reply({"ok": False, "error": "bad request: not a JSON object"})
            return
        self.handler(request, conn)

    def close(self) -> None:
        for conn in self.connections:
            conn.close()
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def request(path: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Client side: send one request, wait up to ``timeout`` for the one reply."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except OSError as exc:
            raise ControlError(
                f"cannot reach the supervisor at {path}: {exc.strerror or exc} "
                "(is `redis-gateway run` running with the same config/port?)"
            ) from exc
        sock.sendall(json.dumps(payload).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            try:
                chunk = sock.recv(65536)
            except TimeoutError as exc:
                raise ControlError(f"no answer from the supervisor within {timeout}s") from exc
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    try:
        reply = json.loads(data)
    except ValueError as exc:
        raise ControlError(f"unreadable answer from the supervisor: {data[:200]!r}") from exc
    if not isinstance(reply, dict):
        raise ControlError(f"unexpected answer from the supervisor: {reply!r}")
    return reply
