"""systemd integration without libsystemd: sd_notify and sd_listen_fds.

API (the arbiter codes against exactly this)::

    notifier = Notifier.from_env()         # no-op object when NOTIFY_SOCKET is unset
    notifier.ready("serving: generation 1, 4 workers, config v1")
    notifier.reloading()                   # RELOADING=1 + MONOTONIC_USEC, one datagram
    notifier.ready("reload failed: ...")   # there is no "reload failed" message in the
                                           # protocol: READY=1 with a STATUS= saying so
    notifier.status("draining generation 3")
    notifier.stopping()
    notifier.mainpid(os.getpid())
    interval = notifier.watchdog_interval()  # seconds between pings, or None
    notifier.watchdog()                      # WATCHDOG=1

    sockets = listen_fds()   # sockets passed by systemd socket activation, [] if none

The unit is ``Type=notify`` (``notify-reload`` needs systemd >= 253; Debian 12 has
252), so ``ExecReload=`` runs ``redis-gateway reload``, which waits for the outcome;
the supervisor still sends ``RELOADING=1``/``READY=1`` so ``systemctl status`` shows
the reload. Sending never raises and never blocks (non-blocking socket): a lost
notification must not take the gateway down or stall its main loop.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, MutableMapping

import structlog

from gateway_worker.errors import GatewayError

log = structlog.get_logger("redis_gateway.systemd")

SD_LISTEN_FDS_START = 3
_LISTEN_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class SystemdError(GatewayError):
    """The environment systemd passed is malformed (names the variable and value)."""


def _one_line(text: str) -> str:
    # A newline would start a new KEY=VALUE assignment in the datagram.
    return " ".join(text.splitlines())


class Notifier:
    """Sends sd_notify datagrams to ``$NOTIFY_SOCKET``; every method is a no-op without it."""

    def __init__(
        self,
        address: str | None,
        watchdog_usec: int | None = None,
    ) -> None:
        self._address: str | None = None
        if address:
            # "@name" is an abstract socket: the name starts with a NUL byte.
            self._address = "\0" + address[1:] if address.startswith("@") else address
        self._watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._last_watchdog = float("-inf")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """Read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (``os.environ`` by default)."""
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET") or None
        watchdog_usec: int | None = None
        raw_usec = env.get("WATCHDOG_USEC")
        raw_pid = env.get("WATCHDOG_PID")
        if raw_usec:
            try:
                usec = int(raw_usec)
                pid_ok = not raw_pid or int(raw_pid) == os.getpid()
            except ValueError:
                log.warning(
                    "systemd.watchdog_env_invalid", watchdog_usec=raw_usec, watchdog_pid=raw_pid
                )
            else:
                # WATCHDOG_PID names another process (e.g. inherited by a child): not ours.
                if usec > 0 and pid_ok:
                    watchdog_usec = usec
        return cls(address, watchdog_usec)

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self._address is not None

    def ready(self, status: str) -> None:
        """Start-up or reload finished (also after a failed reload, with a STATUS saying so)."""
        self._send(f"READY=1\nSTATUS={_one_line(status)}")

    def reloading(self) -> None:
        """A reload started. MONOTONIC_USEC must travel in the same datagram."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        """A graceful stop started."""
        self._send("STOPPING=1")

    def status(self, text: str) -> None:
        """Free-form status line shown by ``systemctl status``."""
        self._send(f"STATUS={_one_line(text)}")

    def mainpid(self, pid: int) -> None:
        """Tell systemd which process is the service's main process."""
        self._send(f"MAINPID={pid}")

    def watchdog_interval(self) -> float | None:
        """Seconds between ``watchdog()`` pings (half of WatchdogSec), or None if disabled."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def watchdog(self) -> None:
        """Keep-alive ping; systemd kills the service if they stop for WatchdogSec.

        Safe to call on every main-loop iteration: pings closer together than half of
        ``watchdog_interval()`` are skipped, so the loop can stay oblivious of timing.
        """
        interval = self.watchdog_interval()
        now = time.monotonic()
        if interval is not None and now - self._last_watchdog < interval / 2:
            return
        self._last_watchdog = now
        self._send("WATCHDOG=1")

    def close(self) -> None:
        """Close the datagram socket (further calls reopen it)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        try:
            if self._sock is None:
                # Non-blocking: the arbiter's main loop sends these, and a full receive
                # queue (a stalled systemd, a test socket nobody reads) must drop a
                # notification rather than freeze the supervisor.
                self._sock = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                )
            self._sock.sendto(message.encode(), self._address)
        except OSError as exc:  # BlockingIOError included: dropped, never blocking
            log.warning("systemd.notify_failed", message=message.split("\n", 1)[0], error=str(exc))


def listen_fds(env: MutableMapping[str, str] = os.environ) -> list[socket.socket]:
    """Sockets passed by systemd socket activation (sd_listen_fds), in fd order.

    Only when ``LISTEN_PID`` is this process (the variables may have been inherited from
    a parent). The variables are removed from ``env`` afterwards, so workers we spawn do
    not mistake them for their own. The returned sockets are close-on-exec; pass them to
    children explicitly (``pass_fds``). For the names (``LISTEN_FDNAMES``), read the
    variable before calling this and pass it to :func:`listen_fd_names`.

    Raises SystemdError if ``LISTEN_FDS``/``LISTEN_PID`` are not numbers.
    """
    raw_pid, raw_count = env.get("LISTEN_PID"), env.get("LISTEN_FDS")
    for name in _LISTEN_VARS:
        env.pop(name, None)
    if not raw_pid or not raw_count:
        return []
    try:
        pid = int(raw_pid)
    except ValueError:
        raise SystemdError(f"LISTEN_PID={raw_pid!r} is not a process id") from None
    try:
        count = int(raw_count)
    except ValueError:
        raise SystemdError(f"LISTEN_FDS={raw_count!r} is not a number of sockets") from None
    if pid != os.getpid():
        return []
    if count < 0:
        raise SystemdError(f"LISTEN_FDS={raw_count!r} must not be negative")
    sockets: list[socket.socket] = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        os.set_inheritable(fd, False)
        try:
            # fileno= lets the socket module query family/type/proto from the kernel.
            sockets.append(socket.socket(fileno=fd))
        except OSError as exc:
            for sock in sockets:
                sock.detach()
            raise SystemdError(f"LISTEN_FDS: fd {fd} is not a socket ({exc})") from exc
    return sockets


def listen_fd_names(raw: str | None, count: int) -> list[str]:
    """Names from a ``LISTEN_FDNAMES`` value read *before* :func:`listen_fds` cleared it.

    systemd names them after the .socket unit (``FileDescriptorName=``); missing names
    are ``"unknown"``, as in sd_listen_fds_with_names().
    """
    names = raw.split(":") if raw else []
    return (names + ["unknown"] * count)[:count]
