"""The server side of the control socket behind `redis-gateway reload|status` and
POST /admin/reload. The protocol (codec and the one client) is
``gateway_worker.control_socket``.

The server is non-blocking and lives in the supervisor's main loop (no thread);
``ControlCommands`` answers ``status``, ``diff``, ``plan`` and queues ``reload`` and
``restore`` (their connection waits in the arbiter until that reload's outcome is known).

Every reply names the supervisor that sent it, ``"supervisor": {"pid", "config_path",
"control_socket"}`` (``SupervisorIdentity``), and a request may say which one it
means, ``"expect": {"config_path": ..., "pid": ...}`` (each optional): a supervisor
that is not that one answers ``{"ok": false, "error": ...}`` and does nothing, so
`redis-gateway reload -c F` never reloads the supervisor of another file.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import structlog

from gateway_worker.control_socket import MAX_REQUEST_BYTES, ControlError, decode, encode
from supervisor.config import LoadedConfig
from supervisor.runtime_files import runtime_dir
from supervisor.triggers.inbox import ReloadRequester

if TYPE_CHECKING:
    from supervisor.reload.lifecycle import Lifecycle

__all__ = [
    "ControlCommands",
    "ControlConnection",
    "ControlError",
    "ControlServer",
    "SupervisorIdentity",
    "default_socket_path",
]

log = structlog.get_logger("redis_gateway.control")


def default_socket_path(port: int) -> str:
    """$XDG_RUNTIME_DIR (or the temp dir)/redis-gateway-<port>.sock."""
    return str(runtime_dir() / f"redis-gateway-{port}.sock")


@dataclass(frozen=True)
class SupervisorIdentity:
    """Which supervisor answers: its pid, main config file (absolute) and socket."""

    pid: int
    config_path: str | None
    control_socket: str

    def as_dict(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "config_path": self.config_path,
            "control_socket": self.control_socket,
        }

    def mismatch(self, expect: object) -> str | None:
        """Why this is not the supervisor a request's ``expect`` names (None: it is)."""
        if expect is None:
            return None
        if not isinstance(expect, dict):
            return f"bad request: 'expect' must be an object, not {expect!r}"
        me = f"this is the supervisor (pid {self.pid}) of {self.config_path or 'no config file'}"
        if "config_path" in expect and expect["config_path"] != self.config_path:
            wanted = expect["config_path"] or "no config file"
            return f"{me}, not of {wanted}: nothing was done"
        if "pid" in expect and expect["pid"] != self.pid:
            return f"{me}, not pid {expect['pid']}: nothing was done"
        return None


class ControlConnection:
    """One client; ``reply`` sends the answer (naming this supervisor) and closes."""

    def __init__(self, sock: socket.socket, identity: SupervisorIdentity | None = None) -> None:
        self.sock = sock
        self.identity = identity
        self.buffer = b""
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def reply(self, payload: Mapping[str, object]) -> None:
        if self.closed:
            return
        message = dict(payload)
        if self.identity is not None:
            message["supervisor"] = self.identity.as_dict()
        data = encode(message)
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


Handler = Callable[[Mapping[str, object], ControlConnection], None]


class Supervised(Protocol):
    """What the control commands read and ask of the supervisor (the arbiter)."""

    @property
    def lifecycle(self) -> Lifecycle: ...
    def status(self) -> dict[str, object]: ...
    def check_drift(self) -> None: ...


class Running(Protocol):
    """The committed config and its version (``supervisor.reload.generations``)."""

    current: LoadedConfig
    version: int


class StateInfo(Protocol):
    def describe(self) -> dict[str, object]: ...


class EmbeddedInfo(Protocol):
    def embedded_status(self) -> dict[str, object] | None:
        """The embedded Redis (None: there is none)."""


class ControlCommands:
    """The ``Handler`` of the supervisor's control socket.

    ``status``; ``reload`` (options: ``discard_restore``, ``if_match`` = the running
    config's hash or a refusal, ``via`` = who asks); ``diff`` (running vs sources);
    ``plan`` (``text``, ``format``: a candidate main file, validated and diffed, never
    applied); ``restore`` (``version``, ``expect_version``, ``dry_run``)."""

    def __init__(
        self,
        supervised: Supervised,
        triggers: ReloadRequester,
        identity: SupervisorIdentity,
        running: Running,
        state: StateInfo,
        *,
        embedded: EmbeddedInfo | None = None,
    ) -> None:
        self._supervised = supervised
        self._triggers = triggers
        self._socket_path = identity.control_socket
        self._identity = identity
        self._running = running
        self._state = state
        self._embedded = embedded

    def __call__(self, request: Mapping[str, object], conn: ControlConnection) -> None:
        cmd = request.get("cmd")
        problem = self._identity.mismatch(request.get("expect"))
        if problem is not None:
            conn.reply({"ok": False, "error": problem})
            return
        handler = {
            "status": self._status,
            "reload": self._reload,
            "diff": self._diff,
            "plan": self._plan,
            "restore": self._restore,
        }.get(str(cmd))
        if handler is None:
            known = "reload, status, diff, plan, restore"
            conn.reply({"ok": False, "error": f"unknown cmd {cmd!r} ({known})"})
            return
        handler(request, conn)

    def _status(self, _request: Mapping[str, object], conn: ControlConnection) -> None:
        status = {
            **self._supervised.status(),
            "control_socket": self._socket_path,
            "config_path": self._identity.config_path,
            "state": self._state.describe(),
            "embedded_redis": (
                self._embedded.embedded_status() if self._embedded is not None else None
            ),
        }
        conn.reply({"ok": True, "status": status})

    def _reload(self, request: Mapping[str, object], conn: ControlConnection) -> None:
        if_match = request.get("if_match")
        running = self._running.current.hash
        if if_match is not None and if_match != running:
            conn.reply(
                {
                    "ok": False,
                    "precondition_failed": True,
                    "hash": running,
                    "error": f"the running config is {running}, not {if_match}: not reloaded",
                }
            )
            return
        if request.get("discard_restore"):
            self._supervised.lifecycle.discard_restore()
        via = request.get("via")
        self._triggers.request_reload(str(via) if via else "control socket", conn)

    def _diff(self, _request: Mapping[str, object], conn: ControlConnection) -> None:
        self._supervised.check_drift()
        conn.reply(self._supervised.lifecycle.diff(self._running.current))

    def _plan(self, request: Mapping[str, object], conn: ControlConnection) -> None:
        text, fmt = request.get("text"), request.get("format", "toml")
        if not isinstance(text, str) or fmt not in ("toml", "yaml", "json"):
            conn.reply({"ok": False, "error": "plan needs text and a format (toml, yaml, json)"})
            return
        conn.reply(self._supervised.lifecycle.plan(self._running.current, text, str(fmt)))

    def _restore(self, request: Mapping[str, object], conn: ControlConnection) -> None:
        version, expect = request.get("version"), request.get("expect_version")
        if not isinstance(version, int) or not (expect is None or isinstance(expect, int)):
            conn.reply({"ok": False, "error": "restore needs an integer version"})
            return
        refused = self._supervised.lifecycle.restore(
            version,
            expect,
            self._running.version,
            dry_run=bool(request.get("dry_run")),
            running=self._running.current,
        )
        if refused is not None:
            conn.reply(refused)
            return
        self._triggers.request_reload(f"restore v{version}", conn)


class ControlServer:
    """Accepts control connections; hands each parsed request to ``handler``."""

    def __init__(
        self, path: str, handler: Handler, identity: SupervisorIdentity | None = None
    ) -> None:
        self.path = path
        self.handler = handler
        self.identity = identity
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
                self.connections.append(ControlConnection(client, self.identity))
            return
        for conn in self.connections:
            if not conn.closed and conn.fileno() == fd:
                self._read(conn)
        self.connections = [c for c in self.connections if not c.closed]

    def _read(self, conn: ControlConnection) -> None:
        try:
            data = conn.sock.recv(65536)
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
            request = decode(line)
        except ControlError as exc:
            conn.reply({"ok": False, "error": f"bad request: {exc}"})
            return
        self.handler(request, conn)

    def close(self) -> None:
        for conn in self.connections:
            conn.close()
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
